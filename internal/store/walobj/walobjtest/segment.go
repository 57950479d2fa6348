// Package walobjtest makes WAL segments for tests: a real long page
// header (as PostgreSQL writes it) for a name, system and segment size,
// then filler. Not a database's WAL; enough for what the archive checks.
package walobjtest

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// Segment is a segSize-byte file named name (a segment or .partial name
// on a timeline) of database system sysid, filled with fill after its
// first page header.
func Segment(name string, sysid uint64, segSize int64, fill byte) []byte {
	tli, _ := strconv.ParseUint(name[:8], 16, 32)
	log, _ := strconv.ParseUint(name[8:16], 16, 32)
	seg, _ := strconv.ParseUint(name[16:24], 16, 32)
	data := bytes.Repeat([]byte{fill}, int(segSize))
	le := binary.LittleEndian
	le.PutUint16(data[0:2], 0xD110) // PostgreSQL 15
	le.PutUint16(data[2:4], 0x0002) // long header
	le.PutUint32(data[4:8], uint32(tli))
	le.PutUint64(data[8:16], log*0x100000000+seg*uint64(segSize))
	le.PutUint32(data[16:20], 0)
	le.PutUint32(data[20:24], 0)
	le.PutUint64(data[24:32], sysid)
	le.PutUint32(data[32:36], uint32(segSize))
	le.PutUint32(data[36:40], 8192)
	return data
}
