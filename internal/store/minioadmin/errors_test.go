package minioadmin

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

// MinIO's JSON errors keep their code and message; refused credentials are
// ErrNotAdmin; what is not the admin API's JSON (S3's XML, HTML, nothing)
// is ErrNotMinIO and quotes a bounded, printable piece of it.
func TestParseError(t *testing.T) {
	for _, tt := range []struct {
		status int
		body   string
		want   error
		text   string
	}{
		{403, `{"Code":"AccessDenied","Message":"Access Denied.","Resource":"/minio/admin/v3/user-info"}`, ErrNotAdmin, "HTTP 403 AccessDenied: Access Denied."},
		{403, `{"Code":"SignatureDoesNotMatch","Message":"The request signature we calculated does not match"}`, ErrNotAdmin, "SignatureDoesNotMatch"},
		{400, `{"Code":"InvalidAccessKeyId","Message":"The Access Key Id you provided does not exist in our records."}`, ErrNotAdmin, "InvalidAccessKeyId"},
		{404, `{"Code":"XMinioAdminNoSuchUser","Message":"The specified user does not exist."}`, ErrNoSuchUser, "HTTP 404 XMinioAdminNoSuchUser"},
		{404, `{"Code":"XMinioAdminNoSuchPolicy","Message":"The canned policy does not exist."}`, ErrNoSuchPolicy, "XMinioAdminNoSuchPolicy"},
		{400, `{"Code":"XMinioAdminPolicyChangeAlreadyApplied","Message":"The specified policy change is already in effect."}`, nil, "already in effect"},
		{403, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`, ErrNotMinIO, "(HTTP 403: an S3 error, AccessDenied: Access Denied)"},
		{404, `<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>minio</BucketName></Error>`, ErrNotMinIO, "NoSuchBucket"},
		{403, "<html><body>Forbidden\x00 by the proxy</body></html>", ErrNotMinIO, "HTTP 403: <html><body>Forbidden by the proxy</body></html>"},
		{502, "<html><body>Bad Gateway</body></html>", nil, "failed (HTTP 502: <html><body>Bad Gateway</body></html>): try again"},
		{503, `<Error><Code>XMinioServerNotInitialized</Code><Message>Server not initialized yet, please try again.</Message></Error>`, nil, "(HTTP 503: an S3 error, XMinioServerNotInitialized: Server not initialized yet, please try again.): try again"},
		{404, "", ErrNotMinIO, "(HTTP 404)"},
		{400, strings.Repeat("\xff", 5000), ErrNotMinIO, "(HTTP 400)"},
	} {
		err := parseError(tt.status, []byte(tt.body))
		for _, s := range []error{ErrNotAdmin, ErrNotMinIO, ErrNoSuchUser, ErrNoSuchPolicy} {
			if errors.Is(err, s) != (s == tt.want) {
				t.Errorf("%d %.40q: %v; errors.Is %v = %v", tt.status, tt.body, err, s, errors.Is(err, s))
			}
		}
		if !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%d %.40q: %q; want it to say %q", tt.status, tt.body, err, tt.text)
		}
	}
	long := parseError(404, []byte(strings.Repeat("a ", 5000))).Error()
	if len(long) > 400 || !strings.HasSuffix(long, "...)") {
		t.Errorf("a long body quoted as %d bytes: %.80q", len(long), long)
	}
}

// Any body of an error answer gives an error that is one kind at most,
// short and printable.
func FuzzParseError(f *testing.F) {
	f.Add(403, []byte(`{"Code":"AccessDenied","Message":"Access Denied."}`))
	f.Add(404, []byte(`{"Code":"XMinioAdminNoSuchUser","Message":"The specified user does not exist."}`))
	f.Add(400, []byte(`{"Code":"XMinioAdminPolicyChangeAlreadyApplied","Message":"x"}`))
	f.Add(404, []byte(`<Error><Code>NoSuchBucket</Code><Message>m</Message></Error>`))
	f.Add(500, []byte("<html>\x00\xff</html>"))
	f.Add(0, []byte{})
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		err := parseError(status, body)
		if err == nil {
			t.Fatal("no error")
		}
		kinds := 0
		for _, s := range []error{ErrNotAdmin, ErrNotMinIO, ErrNoSuchUser, ErrNoSuchPolicy} {
			if errors.Is(err, s) {
				kinds++
			}
		}
		if kinds > 1 {
			t.Fatalf("%v is %d kinds", err, kinds)
		}
		msg := err.Error()
		if len(msg) > 2*4*maxSnippet+200 {
			t.Fatalf("%d bytes of message", len(msg))
		}
		for _, r := range msg {
			if !unicode.IsPrint(r) {
				t.Fatalf("unprintable %q in %q", r, msg)
			}
		}
	})
}
