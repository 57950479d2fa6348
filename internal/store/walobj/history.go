package walobj

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/age"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// Switch is one line of a timeline history file: timeline Parent ended at
// the WAL position End ("0/5000000"), where its child began.
type Switch struct {
	Parent uint32
	End    string
	Reason string
}

// HistoryName is the history file of timeline tli (00000002.history).
func HistoryName(tli uint32) string { return fmt.Sprintf("%08X.history", tli) }

// ParseHistory reads a NNNNNNNN.history file as PostgreSQL writes it: one
// line per ancestor, "parentTLI<TAB>switchpoint<TAB>reason", oldest first;
// blank lines and # comments are skipped. The parents must go up and the
// switch points must not go back.
func ParseHistory(data []byte) ([]Switch, error) {
	var out []Switch
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("history line %d %q: want parent timeline, switch point and reason", n, line)
		}
		tli, err := strconv.ParseUint(fields[0], 10, 32)
		if err != nil || tli == 0 {
			return nil, fmt.Errorf("history line %d %q: %q is not a timeline", n, line, fields[0])
		}
		end, err := parseLSN(fields[1])
		if err != nil {
			return nil, fmt.Errorf("history line %d %q: %w", n, line, err)
		}
		if len(out) > 0 {
			prev := out[len(out)-1]
			if uint32(tli) <= prev.Parent {
				return nil, fmt.Errorf("history line %d %q: timeline %d does not come after timeline %d", n, line, tli, prev.Parent)
			}
			if pe, _ := parseLSN(prev.End); end < pe {
				return nil, fmt.Errorf("history line %d %q: switch point %s is before the previous one, %s", n, line, fields[1], prev.End)
			}
		}
		out = append(out, Switch{Parent: uint32(tli), End: fields[1], Reason: strings.Join(fields[2:], " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("LSN %q: want X/Y in hex", s)
	}
	return h<<32 | l, nil
}

// SegmentNumber is a segment's position on its timeline, for segments of
// segSize bytes (0: the default).
func SegmentNumber(name string, segSize int64) (uint64, error) { return segNo(name, segSize) }

// ReadHistory reads and parses timeline tli's history file from the store
// (checked like every fetched file; decrypted with identity when it is
// encrypted).
func ReadHistory(ctx context.Context, store objstore.Store, source string, tli uint32, identity age.Identity) ([]Switch, error) {
	name := HistoryName(tli)
	rc, err := store.Get(ctx, Key(source, name))
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", name, source, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := Decode(&buf, io.LimitReader(rc, 1<<20), identity); err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", name, source, err)
	}
	sw, err := ParseHistory(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", name, source, err)
	}
	return sw, nil
}
