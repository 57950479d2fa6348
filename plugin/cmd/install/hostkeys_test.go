package install

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-dr/kubectl-dr/internal/agentconfig"
	"github.com/kubectl-dr/kubectl-dr/plugin/cmd/cmdutil"
)

// The DaemonSet carries the digest of the host keys of the ConfigMap it is
// rendered with, as the agent computes it from the ConfigMap's bytes; the
// stop command install's flag sets changes it.
func TestRenderedDaemonSetCarriesHostKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags map[string]string
	}{
		{name: "defaults"},
		{name: "stop and start commands", flags: map[string]string{"stop-command": "[sh, -c, 'systemctl stop etcd']", "start-command": "systemctl start etcd", "restore-flavor": "etcd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &Options{RestoreFlavor: tc.flags["restore-flavor"], StopCommand: tc.flags["stop-command"], StartCommand: tc.flags["start-command"],
				changed: func(f string) bool { _, ok := tc.flags[f]; return ok }}
			objs := render(t, o.configureHost)
			ds := find[appsv1.DaemonSet](t, objs, "DaemonSet", "dr-agent")
			cm := find[corev1.ConfigMap](t, objs, "ConfigMap", ConfigMapName)
			args := ds.Spec.Template.Spec.Containers[0].Args
			i := slices.Index(args, "--host-keys-sha256")
			if i < 0 || i+1 >= len(args) {
				t.Fatalf("DaemonSet args %q: no --host-keys-sha256", args)
			}
			cfg, err := agentconfig.Parse([]byte("nodeName: n1\n"+cm.Data[ConfigKey]), "cm")
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HostKeysSHA256() != args[i+1] {
				t.Errorf("DaemonSet gives %s, the ConfigMap's host keys are %s", args[i+1], cfg.HostKeysSHA256())
			}
			if err := cfg.CheckHostKeys(args[i+1]); err != nil {
				t.Errorf("the agent would refuse install's own ConfigMap: %v", err)
			}
			if tc.flags != nil {
				if got := strings.Join(cfg.Restore.StopCommand, "|"); got != "sh|-c|systemctl stop etcd" {
					t.Errorf("stop command %q", got)
				}
				if got := strings.Join(cfg.Restore.StartCommand, "|"); got != "systemctl|start|etcd" {
					t.Errorf("start command %q", got)
				}
				edited := strings.Replace(cm.Data[ConfigKey], "systemctl stop etcd", "id > /tmp/pwned", 1)
				ecfg, err := agentconfig.Parse([]byte("nodeName: n1\n"+edited), "cm")
				if err != nil {
					t.Fatal(err)
				}
				if err := ecfg.CheckHostKeys(args[i+1]); err == nil {
					t.Errorf("a ConfigMap with another stop command passes the DaemonSet's digest")
				}
			}
			// Rendering again (config set re-applies the DaemonSet) keeps
			// one digest argument.
			again := render(t, o.configureHost)
			n := 0
			args = find[appsv1.DaemonSet](t, again, "DaemonSet", "dr-agent").Spec.Template.Spec.Containers[0].Args
			for _, a := range args {
				if a == "--host-keys-sha256" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("rendered again: args %q, want one --host-keys-sha256", args)
			}
		})
	}
}

// config set and install --set refuse every key that makes the agent run
// a program or write where install did not say, naming the flag to use,
// and a parent key that would replace one.
func TestParseChangeRefusesHostKeys(t *testing.T) {
	for arg, want := range map[string]string{
		"restore.stopCommand=[sh, -c, id]": "--stop-command",
		"restore.startCommand=[sh]":        "--start-command",
		"restore.k3sBinary=/tmp/k3s":       "--k3s-binary",
		"restore.flavor=etcd":              "--restore-flavor",
		"restore.etcdDataDir=/etc":         "--etcd-data-dir",
		"apiServer=10.0.0.9:6443":          "--api-server",
		"restic.binary=/tmp/x":             "ships restic",
		"restic.cacheDir=/etc":             "--state-dir",
		"restore={stopCommand: [sh]}":      "restore.etcdDataDir, restore.flavor, restore.k3sBinary, restore.startCommand, restore.stopCommand",
		"restic={binary: /tmp/x}":          "restic.binary, restic.cacheDir, restic.passwordFile",
		"etcd={schedule: off}":             "etcd.snapshotKeyFile",
	} {
		_, err := ParseChange(arg)
		if cmdutil.Code(err) != cmdutil.ExitUsage || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want a usage error naming %q", arg, err, want)
		}
	}
	for _, arg := range []string{"restic.paths=[/srv]", "etcd.schedule=off", "restic.retention.keepDaily=3"} {
		if _, err := ParseChange(arg); err != nil {
			t.Errorf("%s: %v", arg, err)
		}
	}
}
