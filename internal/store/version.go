package store

import "fmt"

// FormatVersion is the version of the records this build writes. Records
// written before records carried one are version 1.
const FormatVersion = 1

// CheckVersion refuses a record written by a newer format than this build
// reads: guessing at fields it does not know could restore the wrong thing.
func CheckVersion(what string, version int) error {
	if version > FormatVersion {
		return fmt.Errorf("%w: %s has store format version %d; this build reads up to %d: use a newer kubectl dr / dr-agent", ErrBadRecord, what, version, FormatVersion)
	}
	return nil
}
