package wal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

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

// headerLen is the header's fixed length: the size is zero-padded, so the
// header can be written after the body is compressed behind it.
const headerLen = len(magic) + 1 + 20 + 1 + 64 + 1

var encoders = sync.Pool{New: func() any {
	zw, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	return zw
}}

// Encode appends the object of the file data to dst. The sha256 runs
// beside the compression, so a segment costs the longer of the two, not
// their sum.
func Encode(dst *bytes.Buffer, data []byte) error {
	var sum [sha256.Size]byte
	hashed := make(chan struct{})
	go func() {
		sum = sha256.Sum256(data)
		close(hashed)
	}()
	start := dst.Len()
	dst.Write(make([]byte, headerLen))
	zw := encoders.Get().(*zstd.Encoder)
	zw.Reset(dst)
	_, err := zw.Write(data)
	if err == nil {
		err = zw.Close()
	}
	encoders.Put(zw)
	<-hashed
	if err != nil {
		return err
	}
	header := fmt.Sprintf("%s %020d %s\n", magic, len(data), hex.EncodeToString(sum[:]))
	copy(dst.Bytes()[start:start+headerLen], header)
	return nil
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
