package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LeavePodCgroups moves the calling process out of a pod's cgroups into the
// lab's kube-apiserver's, so that what it starts next (an etcd member the
// kube node's agent pod starts again after a restore, through nsenter)
// outlives that pod: the kubelet kills every process in a pod's cgroups
// when it stops the pod. Outside a pod it does nothing.
func (l *Lab) LeavePodCgroups() error {
	self, err := readCgroups("self")
	if err != nil {
		return err
	}
	inPod := false
	for _, path := range self {
		inPod = inPod || strings.Contains(path, "kubepods")
	}
	if !inPod {
		return nil
	}
	pid, ok := l.proc("kube-apiserver").pid(l.Dir)
	if !ok {
		return errors.New("leave the pod's cgroups: the lab's kube-apiserver is not running to take its cgroups")
	}
	ref, err := readCgroups(strconv.Itoa(pid))
	if err != nil {
		return err
	}
	var errs []error
	for hierarchy, path := range ref {
		if self[hierarchy] == path {
			continue
		}
		procs := filepath.Join(cgroupMount(hierarchy), path, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("leave the pod's cgroups: %w", err))
		}
	}
	return errors.Join(errs...)
}

// readCgroups reads /proc/PID/cgroup: hierarchy (its controllers, "" for
// cgroup v2) to path.
func readCgroups(pid string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join("/proc", pid, "cgroup"))
	if err != nil {
		return nil, fmt.Errorf("read cgroups: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			out[parts[1]] = parts[2]
		}
	}
	return out, nil
}

// cgroupMount is where a hierarchy is mounted: /sys/fs/cgroup/<controllers>
// for cgroup v1 (name=systemd in systemd), the unified hierarchy for v2.
func cgroupMount(hierarchy string) string {
	if hierarchy == "" {
		if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
			return "/sys/fs/cgroup/unified"
		}
		return "/sys/fs/cgroup"
	}
	return filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(hierarchy, "name="))
}
