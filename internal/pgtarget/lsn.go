package pgtarget

import (
	"fmt"
	"strconv"
	"strings"
)

// LSN is a WAL position.
type LSN uint64

// ParseLSN reads PostgreSQL's X/Y form (hex, each part up to 8 digits).
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("LSN %q: want X/Y in hex, such as 0/3000060 (pg_current_wal_lsn() prints one)", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("LSN %q: want X/Y in hex, such as 0/3000060 (pg_current_wal_lsn() prints one)", s)
	}
	return LSN(h<<32 | l), nil
}

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }
