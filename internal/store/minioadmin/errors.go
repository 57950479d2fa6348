package minioadmin

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"unicode"
)

var (
	// ErrNotAdmin: MinIO refused the credentials for its admin API, a
	// wrong secret key or a user without admin rights.
	ErrNotAdmin = errors.New("the credentials are not MinIO admin credentials")
	// ErrNotMinIO: the endpoint does not answer MinIO's admin API (AWS S3,
	// SeaweedFS, a proxy): its user must be made by hand.
	ErrNotMinIO = errors.New("the endpoint does not speak MinIO's admin API")
	// ErrNoSuchUser and ErrNoSuchPolicy are the info calls' "not there".
	ErrNoSuchUser   = errors.New("no such user")
	ErrNoSuchPolicy = errors.New("no such policy")
)

// Error is an error the admin API answered, in its JSON form
// ({"Code":..,"Message":..}).
type Error struct {
	Status  int
	Code    string
	Message string
	// kind is one of the sentinel errors above, or nil.
	kind error
}

func (e *Error) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.kind }

// Codes MinIO answers for credentials it does not accept as an admin's.
var authCodes = map[string]bool{
	"AccessDenied":                true,
	"InvalidAccessKeyId":          true,
	"SignatureDoesNotMatch":       true,
	"XMinioAdminAccessDenied":     true,
	"XMinioInvalidIAMCredentials": true,
}

// maxSnippet bounds how much of a body an error quotes.
const maxSnippet = 200

// parseError reads the body of an answer that was not a success. MinIO's
// admin API answers JSON; anything else (S3's XML, HTML, nothing) is not
// that API, and says ErrNotMinIO, but for a server error (5xx).
func parseError(status int, body []byte) error {
	var e struct{ Code, Message string }
	if err := json.Unmarshal(body, &e); err == nil && e.Code != "" {
		ae := &Error{Status: status, Code: clean(e.Code), Message: clean(e.Message)}
		switch {
		case status == 403 || authCodes[e.Code]:
			ae.kind = ErrNotAdmin
		case e.Code == "XMinioAdminNoSuchUser":
			ae.kind = ErrNoSuchUser
		case e.Code == "XMinioAdminNoSuchPolicy":
			ae.kind = ErrNoSuchPolicy
		}
		return ae
	}
	what := ""
	var x struct {
		XMLName xml.Name
		Code    string
		Message string
	}
	if err := xml.Unmarshal(body, &x); err == nil && x.Code != "" {
		what = fmt.Sprintf(": an S3 error, %s: %s", clean(x.Code), clean(x.Message))
	} else if s := clean(string(body)); s != "" {
		what = ": " + s
	}
	if status >= 500 {
		// A server error says nothing of what answers: MinIO while it
		// starts, a proxy without its backend.
		return fmt.Errorf("the admin API's endpoint failed (HTTP %d%s): try again", status, what)
	}
	return fmt.Errorf("%w (HTTP %d%s)", ErrNotMinIO, status, what)
}

// clean makes text from a server printable and short, for an error
// message.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxSnippet {
		s = string(r[:maxSnippet]) + "..."
	}
	return s
}
