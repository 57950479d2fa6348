package printers

import (
	"encoding/json"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Error is how a failed command reports itself with -o json: one object
// on a line of stderr, after any progress events (whose type is
// "progress"), so a reader of that stream tells the two apart by type.
type Error struct {
	Type            string `json:"type"`
	metav1.TypeMeta `json:",inline"`
	Message         string `json:"error"`
	ExitCode        int    `json:"exitCode"`
}

// PrintError writes err and the exit code it ends the command with as one
// JSON line.
func PrintError(w io.Writer, err error, code int) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(Error{
		Type:     "error",
		TypeMeta: metav1.TypeMeta{APIVersion: APIVersion, Kind: "Error"},
		Message:  err.Error(),
		ExitCode: code,
	})
}
