package cmd_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kubectl-dr/kubectl-dr/internal/store/backupset"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/printers"
)

// Ctrl-C cancels the context main runs the command with: every verb then
// exits 130, whether the interrupted call came back as an error or the
// verb finished anyway.
func TestInterruptedVerbsExit130(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.agent("server-1", nil)
	seedRestoreSet(e)
	seedSnapshots(e)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	for _, args := range [][]string{
		{"status"},
		{"backup", "create", "cut-short", "--etcd=false"},
		{"backup", "ls"},
		{"backup", "describe", "nightly"},
		{"backup", "verify", "nightly"},
		{"restore", "nightly", "--node", "server-1", "--dry-run"},
		{"etcd", "snapshot", "ls"},
		{"etcd", "snapshot", "save"},
		{"etcd", "restore", "--latest", "--dry-run"},
		{"wal", "status"},
		{"pg", "ls"},
		{"version"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := e.runContext(ctx, args...)
			if r.code != cmdutil.ExitInterrupted || !strings.Contains(r.stderr, "error: ") {
				t.Errorf("want exit 130 and the error on stderr\n%s", r)
			}
		})
	}
	// The interrupted backup still records its set, as Failed.
	if s := e.readSet("cut-short"); s == nil || s.Phase != backupset.Failed || s.Error != "interrupted" {
		t.Errorf("interrupted set %+v, want Failed, interrupted", s)
	}

	r := e.runContext(ctx, "backup", "ls", "-o", "json")
	if je := jsonError(t, r.stderr); r.code != 130 || je.ExitCode != 130 || je.Message != "interrupted: context canceled" {
		t.Errorf("-o json: exit %d, error %+v", r.code, je)
	}
}

// Bad arguments and flags exit 2 in every verb family, before anything is
// asked or printed.
func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	for _, args := range [][]string{
		{"--no-such-flag"},
		{"no-such-verb"},
		{"config", "no-such-verb"},
		{"backup", "extra"},
		{"backup", "create", "a", "b"},
		{"backup", "ls", "extra"},
		{"backup", "ls", "-o", "xml"},
		{"backup", "ls", "--no-such-flag"},
		{"backup", "describe"},
		{"backup", "describe", "x", "-o", "xml"},
		{"backup", "rm"},
		{"backup", "rm", "Bad_Name"},
		{"backup", "verify", "a", "b"},
		{"backup", "verify", "Bad_Name"},
		{"etcd", "snapshot", "ls", "-o", "xml"},
		{"etcd", "snapshot", "describe"},
		{"etcd", "snapshot", "describe", "x", "-o", "xml"},
		{"etcd", "snapshot", "rm"},
		{"etcd", "snapshot", "rm", "a/b"},
		{"etcd", "snapshot", "download", "x"},
		{"etcd", "snapshot", "save", "extra"},
		{"etcd", "snapshot", "save", "--name", "a/b"},
		{"etcd", "snapshot", "save", "-o", "xml"},
		{"etcd", "snapshot", "prune", "extra"},
		{"etcd", "restore", "a", "b"},
		{"etcd", "restore"},
		{"etcd", "restore", "--latest", "-o", "xml"},
		{"etcd", "restore", "--status", "--latest"},
		{"restore"},
		{"restore", "nightly", "-o", "xml"},
		{"status", "extra"},
		{"status", "-o", "xml"},
		{"wal", "status", "a", "b"},
		{"wal", "status", "-o", "xml"},
		{"pg", "ls", "a", "b"},
		{"pg", "ls", "-o", "xml"},
		{"pg", "prune"},
		{"pg", "prune", "src", "-o", "xml"},
		{"pg", "basebackup"},
		{"pg", "restore", "src", "--target-dir", "/x"},
		{"pg", "restore", "src", "--latest", "--target-dir", "relative"},
		{"pg", "restore", "src", "--to", "yesterday", "--target-dir", "/x"},
		{"config", "get", "a", "b"},
		{"config", "set"},
		{"config", "set", "no-equals-sign"},
		{"install", "extra"},
		{"install", "-o", "xml"},
		{"install", "-o", "yaml"},
		{"install", "--dry-run", "-o", "table"},
		{"uninstall", "extra"},
		{"version", "extra"},
		{"version", "-o", "xml"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := e.run(args...)
			if r.code != cmdutil.ExitUsage || !strings.HasPrefix(r.stderr, "error: ") || r.stdout != "" {
				t.Errorf("want exit 2, the error on stderr and nothing on stdout\n%s", r)
			}
		})
	}
}

// With -o json the error is one JSON object on stderr; without, a line
// starting "error: ".
func TestErrorsAreJSONWithOutputJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	noStore := newEnv(t)
	noStore.noStore = true
	for _, tc := range []struct {
		env  *env
		args []string
		code int
		want string
	}{
		{e, []string{"backup", "describe", "missing", "-o", "json"}, 1, `backup set not found: no "missing" in ` + e.store.String() + ` (kubectl dr backup ls shows the sets)`},
		{e, []string{"backup", "ls", "extra", "-o", "json"}, 2, `kubectl dr backup ls takes no arguments, got ["extra"]`},
		{e, []string{"backup", "ls", "-o", "json", "--no-such-flag"}, 2, "unknown flag: --no-such-flag"},
		{noStore, []string{"etcd", "snapshot", "describe", "missing", "-o", "json"}, 1, "cannot list etcd snapshots: read the store directly: no store configured: no API server in this test"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			checkJSONError(t, tc.env.run(tc.args...), tc.code, tc.want)
		})
	}

	r := e.run("backup", "describe", "missing")
	if r.code != 1 || r.stderr != `error: backup set not found: no "missing" in `+e.store.String()+" (kubectl dr backup ls shows the sets)\n" {
		t.Errorf("without -o json: want a plain error line\n%s", r)
	}
}

func checkJSONError(t *testing.T, r result, code int, message string) {
	t.Helper()
	if r.code != code || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("want exit %d, nothing on stdout, one line on stderr\n%s", code, r)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(r.stderr), &got); err != nil {
		t.Fatalf("stderr is not JSON: %v\n%s", err, r.stderr)
	}
	want := map[string]any{"type": "error", "kind": "Error", "apiVersion": printers.APIVersion, "error": message, "exitCode": float64(code)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("error object %v has other fields than %v", got, want)
	}
}
