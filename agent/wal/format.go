package wal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
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

// frameSize: a file is compressed as independent zstd frames of this
// size, on every CPU at once (a 16 MiB segment of dense WAL took 90 ms on
// one). Frames one after another are one zstd stream to any decoder; the
// ratio is within a fraction of a percent of one frame's.
const frameSize = 2 << 20

// encoder's EncodeAll runs on as many goroutines as there are CPUs.
var encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithZeroFrames(true))

// frameBufs keeps each call's compressed frames: a segment's worth of
// fresh memory per file shows in the latency's tail.
var frameBufs = sync.Pool{New: func() any { return new([][]byte) }}

// Encode appends the object of the file data to dst. The frames and the
// sha256 are computed side by side.
func Encode(dst *bytes.Buffer, data []byte) error {
	frames := frameBufs.Get().(*[][]byte)
	defer frameBufs.Put(frames)
	n := max(1, (len(data)+frameSize-1)/frameSize)
	for len(*frames) < n {
		*frames = append(*frames, nil)
	}
	out := (*frames)[:n]
	var sum [sha256.Size]byte
	var wg sync.WaitGroup
	wg.Add(1 + n)
	go func() {
		defer wg.Done()
		sum = sha256.Sum256(data)
	}()
	for i := range out {
		go func() {
			defer wg.Done()
			out[i] = encoder.EncodeAll(data[min(i*frameSize, len(data)):min((i+1)*frameSize, len(data))], out[i][:0])
		}()
	}
	wg.Wait()
	fmt.Fprintf(dst, "%s %020d %s\n", magic, len(data), hex.EncodeToString(sum[:]))
	for _, f := range out {
		dst.Write(f)
	}
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
