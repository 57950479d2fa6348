package walobj

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"filippo.io/age"
	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// ObjectSuffix ends every WAL object's key.
const ObjectSuffix = ".zst"

// Stored objects are a one-line header, then the file compressed with
// zstd, encrypted with age to the snapshot recipient when the agent has
// one:
//
//	drwal3 <size> <xxh64 of the raw file, 16 hex digits>\n<age(zstd(file))>
//	drwal2 <size> <xxh64 of the raw file, 16 hex digits>\n<zstd(file)>
//
// so fetch checks the whole file against what was shipped before
// PostgreSQL sees a byte of it. The magic is the format marker: drwal3 is
// encrypted, drwal2 and drwal1 are clear. The checksum is over the raw
// file in every format, and stays outside the encryption, so that a
// shipper (which holds only the recipient) can tell a file it ships again
// from the one the archive holds without decrypting. Objects shipped
// before (drwal1) carry the sha256 instead and still decode; xxh64
// replaced it because it hashes a segment in 1 ms where sha256 took 10 of
// a ship's 20.
const (
	magicAge    = "drwal3"
	magic       = "drwal2"
	magicSHA256 = "drwal1"
)

// maxFileSize is the largest file an object can hold: PostgreSQL's largest
// WAL segment (wal_segment_size is at most 1 GB).
const maxFileSize = 1 << 30

// ErrCorrupt means a stored object does not match its checksum.
var ErrCorrupt = errors.New("WAL object is corrupt")

// ErrKey means an encrypted object cannot be read with the identity given
// (none, or not the one it was encrypted to).
var ErrKey = errors.New("WAL object is encrypted")

// frameSize: a file is compressed as independent zstd frames of this
// size, on every CPU at once (a 16 MiB segment of dense WAL took 90 ms on
// one). Frames one after another are one zstd stream to any decoder; the
// ratio is within a fraction of a percent of one frame's.
const frameSize = 2 << 20

// Encoder compresses WAL files into objects, encrypted when it has a
// recipient. It is safe for concurrent use; a process needs one.
type Encoder struct {
	z         *zstd.Encoder
	recipient age.Recipient
	// frames keeps each call's compressed frames: a segment's worth of
	// fresh memory per file shows in the latency's tail.
	frames sync.Pool
}

// NewEncoder returns an Encoder whose EncodeAll runs on as many goroutines
// as there are CPUs, writing objects encrypted to recipient (drwal3), or
// clear ones (drwal2) when it is nil. The frames carry no zstd checksum of
// their own: the header's xxh64 covers the whole file, and Decode checks
// it (5% of the CPU a dense segment takes).
func NewEncoder(recipient age.Recipient) (*Encoder, error) {
	z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false))
	if err != nil {
		return nil, fmt.Errorf("WAL compressor: %w", err)
	}
	return &Encoder{z: z, recipient: recipient, frames: sync.Pool{New: func() any { return new([][]byte) }}}, nil
}

// Warm encodes a frame on every CPU once, so that the first file a caller
// ships does not pay for the compressor's state.
func (e *Encoder) Warm() {
	var buf bytes.Buffer
	_ = e.Encode(&buf, make([]byte, frameSize*runtime.GOMAXPROCS(0)))
}

// Encode appends the object of the file data to dst.
func (e *Encoder) Encode(dst *bytes.Buffer, data []byte) error {
	return e.encode(dst, data, nil)
}

// ReadEncode reads a file of size bytes from r into *buf (grown as needed,
// to be reused) and appends its object to dst. Each frame is compressed as
// soon as it has been read, while the next one is read. r must end at size:
// a file that grew or shrank is an error.
func (e *Encoder) ReadEncode(dst *bytes.Buffer, r io.Reader, size int64, buf *[]byte) error {
	if int64(cap(*buf)) < size {
		*buf = make([]byte, size)
	}
	data := (*buf)[:size]
	start := dst.Len()
	err := e.encode(dst, data, func(frame []byte) error {
		_, err := io.ReadFull(r, frame)
		return err
	})
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("shorter than its %d bytes: it changed while being read", size)
	}
	if err != nil {
		return err
	}
	if n, _ := r.Read(make([]byte, 1)); n > 0 {
		dst.Truncate(start)
		return fmt.Errorf("longer than its %d bytes: it changed while being read", size)
	}
	return nil
}

// encode compresses data as frames side by side, each started as soon as
// fill (if any) has filled it in, and hashes it meanwhile.
func (e *Encoder) encode(dst *bytes.Buffer, data []byte, fill func([]byte) error) error {
	frames := e.frames.Get().(*[][]byte)
	defer e.frames.Put(frames)
	n := max(1, (len(data)+frameSize-1)/frameSize)
	for len(*frames) < n {
		*frames = append(*frames, nil)
	}
	out := (*frames)[:n]
	h := xxhash.New()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range out {
		frame := data[min(i*frameSize, len(data)):min((i+1)*frameSize, len(data))]
		if fill != nil {
			if err := fill(frame); err != nil {
				return err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = e.z.EncodeAll(frame, out[i][:0])
		}()
		h.Write(frame)
	}
	wg.Wait()
	if e.recipient == nil {
		fmt.Fprintf(dst, "%s %020d %016x\n", magic, len(data), h.Sum64())
		for _, f := range out {
			dst.Write(f)
		}
		return nil
	}
	// age encrypts in 64 KiB chunks as the frames go through: the object
	// is built once, as the clear one is.
	fmt.Fprintf(dst, "%s %020d %016x\n", magicAge, len(data), h.Sum64())
	w, err := age.Encrypt(dst, e.recipient)
	if err != nil {
		return fmt.Errorf("encrypt WAL object: %w", err)
	}
	for _, f := range out {
		if _, err := w.Write(f); err != nil {
			return fmt.Errorf("encrypt WAL object: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encrypt WAL object: %w", err)
	}
	return nil
}

// Decode writes the file held in the object r to w and checks its size and
// checksum; on a mismatch the error wraps ErrCorrupt and w must be thrown
// away. An encrypted object needs identity (the snapshot key): without
// it, or with another key, the error wraps ErrKey. Clear objects need
// none.
func Decode(w io.Writer, r io.Reader, identity age.Identity) (int64, error) {
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("%w: no header: %v", ErrCorrupt, err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || (f[0] != magic && f[0] != magicSHA256 && f[0] != magicAge) {
		return 0, fmt.Errorf("%w: bad header %q", ErrCorrupt, strings.TrimSpace(line))
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || size < 0 || size > maxFileSize {
		return 0, fmt.Errorf("%w: bad size in header", ErrCorrupt)
	}
	var body io.Reader = br
	if f[0] == magicAge {
		if identity == nil {
			return 0, fmt.Errorf("%w: it needs the snapshot key (age identity) to be read, and none was given", ErrKey)
		}
		dec, err := age.Decrypt(br, identity)
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return 0, fmt.Errorf("%w to another key than the snapshot key given: %v", ErrKey, err)
		}
		if err != nil {
			return 0, fmt.Errorf("%w: decrypt: %v", ErrCorrupt, err)
		}
		body = dec
	}
	zr, err := zstd.NewReader(body, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return 0, err
	}
	defer zr.Close()
	var h hash.Hash = xxhash.New()
	kind := "xxh64"
	if f[0] == magicSHA256 {
		h, kind = sha256.New(), "sha256"
	}
	// One byte past the header's size is enough to know the object is
	// not what was shipped; a corrupt body could decode to gigabytes.
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(zr, size+1))
	if err != nil {
		return n, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if n > size {
		return n, fmt.Errorf("%w: decodes to more than the %d bytes shipped", ErrCorrupt, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != f[2] {
		return n, fmt.Errorf("%w: %d bytes with %s %s, shipped as %d bytes with %s", ErrCorrupt, n, kind, got, size, f[2])
	}
	return n, nil
}

// checksumKind is what a header's checksum is of the raw file: formats
// of one kind can be compared by their headers.
func checksumKind(format string) string {
	switch format {
	case magicAge, magic:
		return "xxh64"
	case magicSHA256:
		return "sha256"
	}
	return ""
}

// EncryptedSize reports whether the object whose first line is header is
// encrypted, and the size of the file it says it holds: what can be
// checked of it without the key.
func EncryptedSize(header string) (int64, bool) {
	f := strings.Fields(header)
	if len(f) != 3 || f[0] != magicAge {
		return 0, false
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || size < 0 || size > maxFileSize {
		return 0, false
	}
	return size, true
}
