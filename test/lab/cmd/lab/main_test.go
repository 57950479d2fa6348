package main

import (
	"strings"
	"testing"
)

// up takes the restore flavour its agents get, and names the choices when
// given another, before it builds or starts anything.
func TestUpRestoreFlavourFlag(t *testing.T) {
	dir := t.TempDir()
	err := run(t.Context(), []string{"up", "--dir", dir, "--etcd-restore", "kubeadm"})
	if err == nil || !strings.Contains(err.Error(), `--etcd-restore "kubeadm": want etcd, k3s or none`) {
		t.Fatalf("up --etcd-restore kubeadm: %v, want the choices named", err)
	}
	for flag, want := range map[string]string{"etcd": "etcd", "k3s": "k3s", "none": ""} {
		if got, err := restoreFlavor(flag); err != nil || got != want {
			t.Errorf("--etcd-restore %s: %q, %v; want %q", flag, got, err, want)
		}
	}
	if line := restoreLine("k3s"); !strings.Contains(line, "k3s stand-in") {
		t.Errorf("up's line for k3s %q does not say the k3s stand-in plays the reset", line)
	}
}
