package bucketobj

import "github.com/kubectl-dr/kubectl-dr/internal/store/objstore"

// Plan is what turns a bucket into the versions wanted.
type Plan struct {
	// Create are keys the bucket lacks, Overwrite keys it holds other
	// bytes under, Delete objects it holds that were not there then.
	Create    []Version
	Overwrite []Version
	Delete    []objstore.BucketObject
	// Same counts the keys that already hold the bytes wanted.
	Same int
}

// MakePlan compares the versions wanted with the bucket's objects now
// (both sorted by key, as Index.At and listings return them).
func MakePlan(want []Version, have []objstore.BucketObject) Plan {
	var p Plan
	i, j := 0, 0
	for i < len(want) || j < len(have) {
		switch {
		case j == len(have) || (i < len(want) && want[i].Key < have[j].Key):
			p.Create = append(p.Create, want[i])
			i++
		case i == len(want) || have[j].Key < want[i].Key:
			p.Delete = append(p.Delete, have[j])
			j++
		default:
			if Holds(have[j], want[i]) {
				p.Same++
			} else {
				p.Overwrite = append(p.Overwrite, want[i])
			}
			i++
			j++
		}
	}
	return p
}

// Holds reports whether the object o holds the bytes of version v: the
// same size and an ETag that is the bytes' md5 or the one recorded.
func Holds(o objstore.BucketObject, v Version) bool {
	if v.Deleted || o.Size != v.Size {
		return false
	}
	return (v.MD5 != "" && o.ETag == v.MD5) || (v.ETag != "" && o.ETag == v.ETag)
}
