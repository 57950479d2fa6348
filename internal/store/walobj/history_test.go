package walobj

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseHistory(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []Switch
		err      string
	}{
		{name: "timeline 2", in: "1\t0/3000000\tno recovery target specified\n",
			want: []Switch{{Parent: 1, End: "0/3000000", Reason: "no recovery target specified"}}},
		{name: "timeline 3 with comments", in: "# comment\n\n1\t0/3000000\tno recovery target specified\n2\t0/50000A0\tat restore point \"x\"\n",
			want: []Switch{{Parent: 1, End: "0/3000000", Reason: "no recovery target specified"}, {Parent: 2, End: "0/50000A0", Reason: `at restore point "x"`}}},
		{name: "empty", in: ""},
		{name: "no switch point", in: "1\n", err: "want parent timeline"},
		{name: "bad timeline", in: "x\t0/1\tr\n", err: `"x" is not a timeline`},
		{name: "bad LSN", in: "1\t3000000\tr\n", err: "want X/Y"},
		{name: "parents go down", in: "2\t0/3000000\tr\n1\t0/4000000\tr\n", err: "does not come after"},
		{name: "switch points go back", in: "1\t0/5000000\tr\n2\t0/4000000\tr\n", err: "before the previous one"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseHistory([]byte(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Error(diff)
			}
		})
	}
}

// History files come from the store: parsing one must not panic, and
// what it accepts prints back to something it accepts the same.
func FuzzParseHistory(f *testing.F) {
	f.Add([]byte("1\t0/3000000\tno recovery target specified\n"))
	f.Add([]byte("1\t0/3000000\tr\n2\t0/50000A0\tat restore point\n"))
	f.Add([]byte("#\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sw, err := ParseHistory(data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, s := range sw {
			fmt.Fprintf(&b, "%d\t%s\t%s\n", s.Parent, s.End, s.Reason)
		}
		again, err := ParseHistory([]byte(b.String()))
		if err != nil || len(again) != len(sw) {
			t.Fatalf("printed history %q does not parse back: %v", b.String(), err)
		}
	})
}
