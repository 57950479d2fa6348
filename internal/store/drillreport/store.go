package drillreport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
	"github.com/kubectl-dr/kubectl-dr/internal/store/signature"
)

// ErrNotFound means no drill has that id.
var ErrNotFound = errors.New("drill report not found")

var idRE = regexp.MustCompile(`^drill-[0-9]{8}-[0-9]{6}$`)

// ValidateID checks a drill id (drill-YYYYMMDD-HHMMSS).
func ValidateID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("invalid drill id %q: drill ids look like drill-20260101-120000 (kubectl dr drill ls shows them)", id)
	}
	return nil
}

// JSONKey and HTMLKey are where a drill's report lives.
func JSONKey(id string) string { return path.Join("drills", id+".json") }

// HTMLKey is the report's page.
func HTMLKey(id string) string { return path.Join("drills", id+".html") }

// Encode returns the record's bytes, setting its version and checksum.
func Encode(r *Report) ([]byte, error) {
	r.Version = drstore.FormatVersion
	sum, err := checksum(r)
	if err != nil {
		return nil, err
	}
	r.Checksum = sum
	return json.MarshalIndent(r, "", "  ")
}

func checksum(r *Report) (string, error) {
	c := *r
	c.Checksum = ""
	data, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("encode drill report %s: %w", r.ID, err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:]), nil
}

// Decode parses the record stored at key: one that does not parse, is of
// a newer format, does not match its checksum or names another id is
// drstore.ErrBadRecord.
func Decode(data []byte, id string) (*Report, error) {
	key := JSONKey(id)
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, drstore.BadRecord(key, fmt.Errorf("not a drill report: %w", err))
	}
	if err := drstore.CheckVersion("drill report "+id, r.Version); err != nil {
		return nil, err
	}
	if r.ID != id {
		return nil, drstore.BadRecord(key, fmt.Errorf("it is the report of drill %q", r.ID))
	}
	want, err := checksum(&r)
	if err != nil {
		return nil, drstore.BadRecord(key, err)
	}
	if r.Checksum != want {
		return nil, drstore.BadRecord(key, fmt.Errorf("checksum %q does not match its content (sha256 %s): the record was changed after it was written", r.Checksum, want))
	}
	return &r, nil
}

// Exists reports whether a drill with this id is stored.
func Exists(ctx context.Context, store objstore.Store, id string) (bool, error) {
	_, err := store.Stat(ctx, JSONKey(id))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, objstore.ErrNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look for drill %s in %s: %w", id, store, err)
}

// Write stores the page, then the record with the page's checksum, signed
// by sign (who ran it: kubectl dr's client certificate, or the node of a
// scheduled drill; nil: unsigned): a listed drill has both.
func Write(ctx context.Context, store objstore.Store, r *Report, html []byte, sign *signature.Signer) error {
	h := sha256.Sum256(html)
	r.HTMLSHA256 = hex.EncodeToString(h[:])
	if _, err := store.Put(ctx, HTMLKey(r.ID), bytes.NewReader(html), int64(len(html))); err != nil {
		return fmt.Errorf("write drill report %s to %s: %w", HTMLKey(r.ID), store, err)
	}
	data, err := Encode(r)
	if err != nil {
		return err
	}
	if err := signature.Put(ctx, store, sign, JSONKey(r.ID), data); err != nil {
		return fmt.Errorf("write drill report %s to %s: %w", JSONKey(r.ID), store, err)
	}
	return nil
}

// maxRecord bounds what a drill's record may take.
const maxRecord = 16 << 20

// Verified reads drill id's record and checks it against its signature
// under p: signed by kubectl dr, or by the node whose schedule ran it (a
// node may not vouch for a drill it says another ran). who is the signer
// (zero for an unsigned record p accepted).
func Verified(ctx context.Context, store objstore.Store, p signature.Policy, id string) (*Report, signature.Who, error) {
	if err := ValidateID(id); err != nil {
		return nil, signature.Who{}, err
	}
	data, who, err := p.Read(ctx, store, "drill report", JSONKey(id), maxRecord, signature.Owner{})
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, who, fmt.Errorf("%w: no %s in %s (kubectl dr drill ls shows the drills)", ErrNotFound, JSONKey(id), store)
	}
	if err != nil {
		return nil, who, err
	}
	r, err := Decode(data, id)
	if err != nil {
		return nil, who, err
	}
	if who.Node != "" && r.Runner != ScheduleRunner(who.Node) {
		return nil, who, fmt.Errorf("drill report refused: %w: %s says it was run by %q but is signed by %s: a node vouches only for the drills its schedule ran", signature.ErrForged, JSONKey(id), r.Runner, who)
	}
	return r, who, nil
}

func get(ctx context.Context, store objstore.Store, id, key string) ([]byte, error) {
	rc, err := store.Get(ctx, key)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("%w: no %s in %s (kubectl dr drill ls shows the drills)", ErrNotFound, key, store)
	}
	if err != nil {
		return nil, fmt.Errorf("read drill report %s: %w", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read drill report %s: %w", key, err)
	}
	return data, nil
}

// Read loads one drill's record.
func Read(ctx context.Context, store objstore.Store, id string) (*Report, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	data, err := get(ctx, store, id, JSONKey(id))
	if err != nil {
		return nil, err
	}
	return Decode(data, id)
}

// ReadHTML loads the drill's page, checked against its record.
func ReadHTML(ctx context.Context, store objstore.Store, r *Report) ([]byte, error) {
	data, err := get(ctx, store, r.ID, HTMLKey(r.ID))
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(data)
	if got := hex.EncodeToString(h[:]); got != r.HTMLSHA256 {
		return nil, drstore.BadRecord(HTMLKey(r.ID), fmt.Errorf("sha256 %s, the report says %s", got, r.HTMLSHA256))
	}
	return data, nil
}

// List loads every drill's record, newest first. A record that cannot be
// used is left out and named in skipped; only a failing store is an error.
func List(ctx context.Context, store objstore.Store) (reports []*Report, skipped []drstore.Skipped, err error) {
	objs, err := store.List(ctx, "drills/")
	if err != nil {
		return nil, nil, fmt.Errorf("list drill reports in %s: %w", store, err)
	}
	var keys []string
	for _, o := range objs {
		if id, ok := strings.CutSuffix(path.Base(o.Key), ".json"); ok && ValidateID(id) == nil {
			keys = append(keys, o.Key)
		}
	}
	reports, skipped, err = drstore.ReadEach(keys, func(k string) (*Report, error) {
		return Read(ctx, store, strings.TrimSuffix(path.Base(k), ".json"))
	}, func(err error) bool { return errors.Is(err, ErrNotFound) })
	if err != nil {
		return nil, nil, err
	}
	sort.Slice(reports, func(i, j int) bool { return reports[i].Started.After(reports[j].Started) })
	return reports, skipped, nil
}
