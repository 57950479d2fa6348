package dbsnap

import (
	"strings"
	"testing"

	"filippo.io/age"
)

// A recipient file holds age1...; one from before the key split holds the
// identity, whose recipient is used and flagged private. Errors never
// quote what the file holds.
func TestParseRecipient(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	want := id.Recipient().String()
	for _, tc := range []struct {
		name, data  string
		private     bool
		errContains string
	}{
		{name: "recipient", data: "# public key\n\n" + want + "\n"},
		{name: "identity", data: "# created: now\n# public key: " + want + "\n" + id.String() + "\n", private: true},
		{name: "empty", data: "# nothing\n", errContains: "no recipient in the file"},
		{name: "garbage", data: "age1notarecipient-SECRETISH\n", errContains: "not an age X25519 recipient"},
		{name: "bad identity", data: "AGE-SECRET-KEY-1SECRETISH\n", errContains: "not an age identity file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, private, err := ParseRecipient([]byte(tc.data), "test")
			if tc.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errContains) || strings.Contains(err.Error(), "SECRETISH") {
					t.Fatalf("err = %v, want one containing %q and not the data", err, tc.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := r.(*age.X25519Recipient).String(); got != want || private != tc.private {
				t.Errorf("recipient %s private %v, want %s %v", got, private, want, tc.private)
			}
		})
	}
}

func FuzzParseRecipient(f *testing.F) {
	f.Add([]byte("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n"))
	f.Add([]byte("# c\nAGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _, err := ParseRecipient(data, "fuzz")
		if (r == nil) == (err == nil) {
			t.Fatalf("recipient %v and error %v", r, err)
		}
	})
}
