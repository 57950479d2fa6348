package pgtarget

import (
	"fmt"
	"strconv"
	"unicode"
)

// MaxNameLen is the longest restore point name PostgreSQL keeps (its
// MAXFNAMELEN less the terminating NUL).
const MaxNameLen = 63

// ParseXID reads a transaction id as txid_current() prints it.
func ParseXID(s string) (uint64, error) {
	x, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("xid %q: want an unsigned integer, as SELECT txid_current() prints it", s)
	}
	if x < 3 {
		return 0, fmt.Errorf("xid %d: not a normal transaction id (the first is 3)", x)
	}
	return x, nil
}

// ValidName checks a restore point name as PostgreSQL takes one.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("restore point name: empty (give the name passed to pg_create_restore_point)")
	}
	if len(s) > MaxNameLen {
		return fmt.Errorf("restore point name %q: %d bytes, PostgreSQL keeps at most %d", s, len(s), MaxNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("restore point name %q: control characters cannot be written into postgresql.auto.conf", s)
		}
	}
	return nil
}

// ValidTimeline checks a --timeline value: latest, current or a number.
func ValidTimeline(s string) error {
	if s == "" || s == "latest" || s == "current" {
		return nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err != nil || n == 0 {
		return fmt.Errorf("timeline %q: want latest, current or a timeline number such as 2", s)
	}
	return nil
}

// Validate checks the target's values and that exclusive applies to it.
func (t Target) Validate() error {
	if err := ValidTimeline(t.Timeline); err != nil {
		return err
	}
	switch t.Kind {
	case Name:
		if err := ValidName(t.Name); err != nil {
			return err
		}
	case XID:
		if t.XID < 3 {
			return fmt.Errorf("xid %d: not a normal transaction id (the first is 3)", t.XID)
		}
	}
	if t.Exclusive && t.Kind != Time && t.Kind != AtLSN && t.Kind != XID {
		return fmt.Errorf("exclusive applies to a time, an LSN or an xid target, not to %s", t.Describe())
	}
	return nil
}
