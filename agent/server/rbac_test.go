package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kubectl-dr/kubectl-dr/manifests"
)

// groupOf maps client-go's typed clients to API groups.
var groupOf = map[string]string{
	"CoreV1": "", "AppsV1": "apps", "EventsV1": "events.k8s.io", "CoordinationV1": "coordination.k8s.io",
	"BatchV1": "batch", "StorageV1": "storage.k8s.io", "RbacV1": "rbac.authorization.k8s.io",
}

var verbOf = map[string]string{
	"Get": "get", "List": "list", "Watch": "watch", "Create": "create", "Update": "update",
	"UpdateStatus": "update", "Patch": "patch", "Apply": "patch", "Delete": "delete", "DeleteCollection": "deletecollection",
}

// agentCalls finds every typed client-go call in the agent's shipped code:
// cs.CoreV1().PersistentVolumes().List(...) is "/persistentvolumes list".
func agentCalls(t *testing.T) []string {
	t.Helper()
	var calls []string
	fset := token.NewFileSet()
	for _, root := range []string{"..", "../../internal"} {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			// benchtool drives hack/bench with the user's kubeconfig; it
			// is never shipped in the agent's pod.
			if d.IsDir() && d.Name() == "benchtool" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				verbCall, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				verbSel, ok := verbCall.Fun.(*ast.SelectorExpr)
				if !ok || verbOf[verbSel.Sel.Name] == "" {
					return true
				}
				resCall, ok := verbSel.X.(*ast.CallExpr)
				if !ok {
					return true
				}
				resSel, ok := resCall.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				groupCall, ok := resSel.X.(*ast.CallExpr)
				if !ok {
					return true
				}
				groupSel, ok := groupCall.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				group, known := groupOf[groupSel.Sel.Name]
				if !known {
					return true
				}
				calls = append(calls, fmt.Sprintf("%s/%s %s", group, strings.ToLower(resSel.Sel.Name), verbOf[verbSel.Sel.Name]))
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(calls)
	return slices.Compact(calls)
}

// The agent's RBAC grants exactly what it calls: a rule nothing calls, or
// a call no rule grants, fails here.
func TestRBACGrantsWhatTheAgentCalls(t *testing.T) {
	data, err := fs.ReadFile(manifests.FS, "rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var granted []string
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var obj struct {
			Kind  string              `json:"kind"`
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		for _, r := range obj.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						granted = append(granted, fmt.Sprintf("%s/%s %s", g, res, v))
					}
				}
			}
		}
	}
	slices.Sort(granted)
	calls := agentCalls(t)
	if len(calls) == 0 {
		t.Fatalf("found no client-go call in the agent: the scan is broken (cwd %s)", must(os.Getwd()))
	}
	for _, g := range granted {
		if !slices.Contains(calls, g) {
			t.Errorf("manifests/rbac.yaml grants %s, which the agent never calls: remove it", g)
		}
	}
	for _, c := range calls {
		if !slices.Contains(granted, c) {
			t.Errorf("the agent calls %s, which manifests/rbac.yaml does not grant", c)
		}
	}
}

func must(s string, _ error) string { return s }
