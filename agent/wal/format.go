package wal

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ObjectSuffix ends every WAL object's key.
const ObjectSuffix = ".zst"

// Stored objects are a one-line header, then the file compressed with
// zstd (whose frames carry their own checksum):
//
//	drwal1 <size> <sha256 of the raw file>\n
//
// so fetch checks the whole file against what was shipped before
// PostgreSQL sees a byte of it.
const magic = "drwal1"

// ErrCorrupt means a stored object does not match its checksum.
var ErrCorrupt = errors.New("WAL object is corrupt")

// Encode writes raw's object to w. raw is read twice: once to hash (the
// header comes first), once to compress.
func Encode(w io.Writer, raw io.ReadSeeker) error {
	h := sha256.New()
	n, err := io.Copy(h, raw)
	if err != nil {
		return err
	}
	if _, err := raw.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%s %d %s\n", magic, n, hex.EncodeToString(h.Sum(nil))); err != nil {
		return err
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	if _, err := io.Copy(zw, raw); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// Decode writes the file held in the object r to w and checks its size and
// sha256; on a mismatch the error wraps ErrCorrupt and w must be thrown
// away.
func Decode(w io.Writer, r io.Reader) (int64, error) {
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("%w: no header: %v", ErrCorrupt, err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != magic {
		return 0, fmt.Errorf("%w: bad header %q", ErrCorrupt, strings.TrimSpace(line))
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: bad size in header", ErrCorrupt)
	}
	zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), zr)
	if err != nil {
		return n, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != f[2] {
		return n, fmt.Errorf("%w: %d bytes with sha256 %s, shipped as %d bytes with %s", ErrCorrupt, n, got, size, f[2])
	}
	return n, nil
}
