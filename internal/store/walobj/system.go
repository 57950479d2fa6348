package walobj

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// System is the database a source's archive belongs to
// (wal/<source>/system.json): written once, by the agent that ships the
// source's first segment, and checked against every segment after.
type System struct {
	Version int    `json:"version"`
	Source  string `json:"source"`
	// SystemID is the database system identifier, in decimal: a JSON
	// number would lose its low digits in most readers.
	SystemID    string    `json:"systemIdentifier"`
	SegmentSize int64     `json:"walSegmentSize"`
	FirstFile   string    `json:"firstFile"`
	Node        string    `json:"node,omitempty"`
	Time        time.Time `json:"time"`
}

// ID is the system identifier as a number.
func (s *System) ID() uint64 {
	id, _ := strconv.ParseUint(s.SystemID, 10, 64)
	return id
}

// SystemKey is where a source's system record is.
func SystemKey(source string) string { return "wal/" + source + "/system.json" }

// ReadSystem reads a source's system record; a source that has none (no
// segment shipped since the agent recorded them) is objstore.ErrNotFound.
func ReadSystem(ctx context.Context, store objstore.Store, source string) (*System, error) {
	key := SystemKey(source)
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	var s System
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, drstore.BadRecord(key, err)
	}
	if err := drstore.CheckVersion(key, s.Version); err != nil {
		return nil, err
	}
	if _, err := strconv.ParseUint(s.SystemID, 10, 64); err != nil || s.Source != source || !pow2(s.SegmentSize, 1<<20, 1<<30) {
		return nil, drstore.BadRecord(key, fmt.Errorf("not a system record of source %s (system %q, segment size %d)", source, s.SystemID, s.SegmentSize))
	}
	return &s, nil
}

// ClaimSystem writes want as the source's system record unless one is
// there, with the store's conditional write, and returns the record in
// force: want, or the one another agent wrote first. The record is read
// back either way, so that of two agents racing on a store without
// conditional writes, the one whose record did not stay learns it.
func ClaimSystem(ctx context.Context, store objstore.Store, want System) (*System, error) {
	want.Version = drstore.FormatVersion
	data, err := json.MarshalIndent(want, "", "  ")
	if err != nil {
		return nil, err
	}
	data = append(data, '\n')
	if _, err := objstore.Create(ctx, store, SystemKey(want.Source), bytes.NewReader(data), int64(len(data))); err != nil && !errors.Is(err, objstore.ErrExists) {
		return nil, fmt.Errorf("record the database system of source %s: %w", want.Source, err)
	}
	return ReadSystem(ctx, store, want.Source)
}

// ObjectHeader is the first line of a stored object (without the
// newline): its format, the file's size and checksum. Two objects whose
// checksums are of one kind and whose sizes and checksums agree hold the
// same file, encrypted or not.
func ObjectHeader(obj []byte) string {
	line, _, _ := bytes.Cut(obj, []byte("\n"))
	return string(line)
}

// SameFile reports whether the object under key holds the file raw, whose
// object's header is header: by the headers' size and checksum when both
// are of the same checksum kind (an encrypted object is compared without
// its key), else by decoding it, which a clear object allows. An
// encrypted object with another kind of checksum than ours cannot be
// compared without the key (no build writes one).
func SameFile(ctx context.Context, store objstore.Store, key, header string, raw []byte) (bool, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	line, err := br.ReadString('\n')
	if err != nil {
		return false, fmt.Errorf("read %s: %w", key, err)
	}
	line = strings.TrimSuffix(line, "\n")
	theirs, ours := strings.Fields(line), strings.Fields(header)
	if len(theirs) == 3 && len(ours) == 3 && checksumKind(theirs[0]) != "" && checksumKind(theirs[0]) == checksumKind(ours[0]) {
		return theirs[1] == ours[1] && theirs[2] == ours[2], nil
	}
	var got bytes.Buffer
	if _, err := Decode(&got, io.MultiReader(strings.NewReader(line+"\n"), br), nil); err != nil {
		return false, fmt.Errorf("%s: %w", key, err)
	}
	return bytes.Equal(got.Bytes(), raw), nil
}
