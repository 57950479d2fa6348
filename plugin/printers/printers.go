package printers

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/printers"

	"github.com/kubectl-dr/kubectl-dr/internal/units"
)

// APIVersion of the view types (not served by any API server; it names
// the shape of kubectl dr's JSON/YAML output).
const APIVersion = "dr.kubectl.io/v1"

// Formats accepted by -o.
const (
	Table = "table"
	Wide  = "wide"
	JSON  = "json"
	YAML  = "yaml"
)

// OutputFlag registers -o on cmd.
func OutputFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVarP(v, "output", "o", Table, "output format: table, wide, json or yaml")
}

// ValidateOutput rejects unknown formats.
func ValidateOutput(format string) error {
	switch format {
	case Table, Wide, JSON, YAML, "":
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table, wide, json or yaml", format)
}

// TableView is a view that can print itself as a table; a nil row starts
// a second table, whose first row is its header.
type TableView interface {
	runtime.Object
	Columns(wide bool) []string
	Rows(wide bool) [][]string
}

// Print writes obj in the given format.
func Print(w io.Writer, format string, obj TableView) error {
	switch format {
	case JSON:
		return (&printers.JSONPrinter{}).PrintObj(obj, w)
	case YAML:
		return (&printers.YAMLPrinter{}).PrintObj(obj, w)
	}
	wide := format == Wide
	tw := printers.GetNewTabWriter(w)
	fmt.Fprintln(tw, strings.Join(obj.Columns(wide), "\t"))
	for _, row := range obj.Rows(wide) {
		// A nil row ends a table: the next one (its header row first)
		// gets its own column widths.
		if row == nil {
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(w)
			tw = printers.GetNewTabWriter(w)
			continue
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// deepCopyJSON copies a view through JSON; views are plain data.
func deepCopyJSON[T any](in *T) *T {
	data, err := json.Marshal(in)
	if err != nil {
		panic(fmt.Sprintf("deep copy %T: %v", in, err))
	}
	out := new(T)
	if err := json.Unmarshal(data, out); err != nil {
		panic(fmt.Sprintf("deep copy %T: %v", in, err))
	}
	return out
}

// HumanBytes formats a size the way kubectl and restic do (binary units).
func HumanBytes(n int64) string { return units.HumanBytes(n) }
