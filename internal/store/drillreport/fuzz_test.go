package drillreport

import (
	"errors"
	"testing"

	drstore "github.com/kubectl-dr/kubectl-dr/internal/store"
)

// A drill record comes from the store: Decode returns the report it names
// or an error that marks it unusable, never panics; what it returns
// encodes back to a record that decodes the same.
func FuzzDecode(f *testing.F) {
	r := sample()
	r.Judge(0, 0)
	good, err := Encode(r)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"id":"drill-20261201-120000","parts":null}`))
	f.Add([]byte(`{"version":2,"id":"drill-20261201-120000"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const id = "drill-20261201-120000"
		r, err := Decode(data, id)
		if err != nil {
			if !errors.Is(err, drstore.ErrBadRecord) {
				t.Fatalf("a bad record's error %v is not ErrBadRecord", err)
			}
			return
		}
		if r.ID != id {
			t.Fatalf("Decode returned report %q for %s", r.ID, id)
		}
		again, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(again, id); err != nil {
			t.Fatalf("a decoded report does not decode after encoding: %v", err)
		}
		if _, err := HTML(r); err != nil {
			t.Fatalf("a decoded report does not render: %v", err)
		}
	})
}
