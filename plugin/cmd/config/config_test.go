package config

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/install"
)

func TestSetKeys(t *testing.T) {
	tree, err := install.ParseConfig("etcd:\n  schedule: off\nrestic:\n  paths: [/a]\n")
	if err != nil {
		t.Fatal(err)
	}
	o := &SetOptions{IOStreams: genericiooptions.NewTestIOStreamsDiscard()}
	if err := o.Complete(nil, []string{"etcd.schedule=0 */2 * * *", "etcd.retention.keepDaily=14", "restic.paths=[/a, /b]", "restic.schedule="}); err != nil {
		t.Fatal(err)
	}
	for _, c := range o.changes {
		if err := c.Apply(tree); err != nil {
			t.Fatal(err)
		}
	}
	for key, want := range map[string]string{
		"etcd.schedule":            "0 */2 * * *",
		"etcd.retention.keepDaily": "14",
		"restic.paths":             "[/a /b]",
	} {
		v, ok := install.Lookup(tree, key)
		if !ok || fmt.Sprint(v) != want {
			t.Errorf("%s = %v (set %v), want %s", key, v, ok, want)
		}
	}
	if _, ok := install.Lookup(tree, "restic.schedule"); ok {
		t.Errorf("restic.schedule= did not remove the key")
	}
	if err := (install.Change{Key: "etcd.schedule.x", Value: 1}).Apply(tree); err == nil || !strings.Contains(err.Error(), "etcd.schedule is not a map") {
		t.Errorf("set below a string: err = %v", err)
	}
}

func TestSetRefusesWhatInstallOwns(t *testing.T) {
	for _, arg := range []string{"store.url=s3://x", "clusterID=abc", "tls.ca=/x", "etcd.snapshotKeyFile=/k", "nodeName=n", "no-equals-sign"} {
		o := &SetOptions{}
		err := o.Complete(nil, []string{arg})
		if cmdutil.Code(err) != cmdutil.ExitUsage {
			t.Errorf("config set %s: err = %v, want a usage error", arg, err)
		}
	}
}

// RPO targets are checked as the agent checks them before anything is
// written: the ConfigMap would not be updated.
func TestSetChecksRPOTargets(t *testing.T) {
	for arg, want := range map[string]string{
		"etcd.rpoTarget=soon":  `etcd.rpoTarget "soon": want a positive duration such as 12h or 30m, or off`,
		"etcd.rpoTarget=1h":    "etcd.rpoTarget 1h0m0s is shorter than etcd.schedule's interval (6h0m0s)",
		"restic.rpoTarget=off": `restic.rpoTarget is false: write "off" in quotes`,
		"etcd.rpoTarget=24h":   "",
		`etcd.rpoTarget="off"`: "",
	} {
		tree, err := install.ParseConfig("tls: {ca: /a, cert: /b, key: /c}\n")
		if err != nil {
			t.Fatal(err)
		}
		o := &SetOptions{}
		if err := o.Complete(nil, []string{arg}); err != nil {
			t.Fatal(err)
		}
		if err := o.changes[0].Apply(tree); err != nil {
			t.Fatal(err)
		}
		_, err = install.MarshalConfig(tree)
		switch {
		case want == "" && err != nil:
			t.Errorf("config set %s: %v", arg, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("config set %s: err = %v, want %q", arg, err, want)
		}
	}
}
