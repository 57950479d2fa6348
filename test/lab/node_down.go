package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Host paths the kubelet and containerd create outside the lab dir even
// with their own roots; down removes those that up found missing.
var nodeHostPaths = []string{
	"/var/lib/kubelet", "/var/log/containers", "/var/log/pods",
	"/run/containerd", "/var/lib/cni", "/etc/cni",
}

// sysctls the kubelet sets; down puts back what up found.
var nodeSysctls = []string{"vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"}

// iptables chains the kubelet adds.
var kubeletChains = []string{"KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"}

// recordHost notes, before the node starts, what down must restore.
func (l *Lab) recordHost() error {
	if l.State.HostBefore != nil {
		return nil
	}
	h := &HostBefore{Sysctls: map[string]string{}}
	for _, p := range nodeHostPaths {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			h.MissingPaths = append(h.MissingPaths, p)
		}
	}
	for _, s := range nodeSysctls {
		if v, err := os.ReadFile("/proc/sys/" + s); err == nil {
			h.Sysctls[s] = strings.TrimSpace(string(v))
		}
	}
	l.State.HostBefore = h
	return l.saveState()
}

// HostBefore is what the machine looked like before the lab's node started.
type HostBefore struct {
	MissingPaths []string          `json:"missingPaths"`
	Sysctls      map[string]string `json:"sysctls"`
}

// downNode stops the node's processes and containers and undoes what the
// kubelet and containerd changed on the host.
func (l *Lab) downNode(log func(string, ...any)) error {
	if l.State.KubeNode == "" {
		return nil
	}
	var errs []error
	for _, name := range []string{"kubelet", "kube-scheduler", "kube-controller-manager"} {
		if stopped, err := l.proc(name).stop(l.Dir, 30*time.Second); err != nil {
			errs = append(errs, err)
		} else if stopped {
			log("stopped %s", name)
		}
	}
	// Containers outlive containerd in their shims: kill the tasks first.
	if _, ok := l.proc("containerd").pid(l.Dir); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, _ := exec.CommandContext(ctx, "ctr", "--address", l.containerdSock(), "-n", "k8s.io", "tasks", "ls", "-q").Output()
		for _, id := range strings.Fields(string(out)) {
			exec.CommandContext(ctx, "ctr", "--address", l.containerdSock(), "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id).Run()
		}
		for _, id := range strings.Fields(string(out)) {
			exec.CommandContext(ctx, "ctr", "--address", l.containerdSock(), "-n", "k8s.io", "tasks", "rm", "-f", id).Run()
		}
		cancel()
	}
	if stopped, err := l.proc("containerd").stop(l.Dir, 30*time.Second); err != nil {
		errs = append(errs, err)
	} else if stopped {
		log("stopped containerd")
	}
	// Shims still running (they name the lab's containerd socket).
	for _, pid := range pidsWithArg(l.Dir) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), "containerd-shim") || strings.Contains(string(cmdline), "/pause") {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := unmountUnder(l.Dir); err != nil {
		errs = append(errs, err)
	}
	l.cleanHost(log)
	l.releaseHost()
	return errors.Join(errs...)
}

func (l *Lab) cleanHost(log func(string, ...any)) {
	for _, table := range []string{"filter", "nat", "mangle"} {
		for _, chain := range kubeletChains {
			if exec.Command("iptables", "-t", table, "-n", "-L", chain).Run() != nil {
				continue
			}
			// Drop the jumps into the chain, then the chain.
			rules, _ := exec.Command("iptables", "-t", table, "-S").Output()
			for _, r := range strings.Split(string(rules), "\n") {
				if strings.HasPrefix(r, "-A ") && strings.Contains(r, "-j "+chain) {
					args := append([]string{"-t", table, "-D"}, strings.Fields(r)[1:]...)
					exec.Command("iptables", args...).Run()
				}
			}
			exec.Command("iptables", "-t", table, "-F", chain).Run()
			exec.Command("iptables", "-t", table, "-X", chain).Run()
		}
	}
	exec.Command("ip", "link", "del", "drlab0").Run()
	removeCgroups("kubepods")
	if h := l.State.HostBefore; h != nil {
		for s, v := range h.Sysctls {
			os.WriteFile("/proc/sys/"+s, []byte(v), 0o644)
		}
		for _, p := range h.MissingPaths {
			if err := os.RemoveAll(p); err == nil {
				log("removed %s", p)
			}
		}
		l.State.HostBefore = nil
		l.saveState()
	}
}

// removeCgroups removes the named cgroup tree in every hierarchy, deepest
// first (a cgroup goes only when empty).
func removeCgroups(name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	if direct, err := os.Stat("/sys/fs/cgroup/" + name); err == nil && direct.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/"+name)
	}
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			os.Remove(d)
		}
	}
}

// unmountUnder lazily unmounts everything mounted below dir, deepest first.
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return err
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 1 && strings.HasPrefix(fields[1], dir+"/") {
			mounts = append(mounts, fields[1])
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	var errs []error
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// ProcessesUnder lists live processes whose command line names dir, as
// "PID command line", for checking that down left nothing behind.
func ProcessesUnder(dir string) []string {
	var out []string
	for _, pid := range pidsWithArg(dir) {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	return out
}

// pidsWithArg lists live processes whose command line contains s.
func pidsWithArg(s string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmdline), s) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// PIDsWithArg are the live processes whose command line contains s.
func PIDsWithArg(s string) []int { return pidsWithArg(s) }

// KillWithArg SIGKILLs every live process whose command line contains s
// (a node that vanishes mid-run) and returns their pids.
func KillWithArg(s string) []int {
	pids := pidsWithArg(s)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return pids
}
