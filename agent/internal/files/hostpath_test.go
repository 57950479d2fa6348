package files

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMountPointsUnescapes(t *testing.T) {
	mi := `22 1 0:21 / / rw,relatime - overlay overlay rw
23 22 8:1 /srv/k3s /var/lib/rancher/k3s rw - ext4 /dev/sda1 rw
24 22 8:1 /data /srv/my\040data rw - ext4 /dev/sda1 rw
`
	got, err := mountPoints(strings.NewReader(mi))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/", "/var/lib/rancher/k3s", "/srv/my data"}; !reflect.DeepEqual(got, want) {
		t.Errorf("mount points %q, want %q", got, want)
	}
}

// In a pod, a target under a host mount is on the node; one on the
// container's root would be restored into the container and lost.
func TestOnNode(t *testing.T) {
	host := t.TempDir()
	mounted := filepath.Join(host, "mounted")
	if err := os.Mkdir(mounted, 0o755); err != nil {
		t.Fatal(err)
	}
	// EvalSymlinks of the temp dir (it may sit behind a symlink).
	real, err := filepath.EvalSymlinks(mounted)
	if err != nil {
		t.Fatal(err)
	}
	mi := "22 1 0:21 / / rw - overlay overlay rw\n23 22 8:1 /x " + real + " rw - ext4 /dev/sda1 rw\n"
	for _, ok := range []string{mounted, filepath.Join(mounted, "not-yet", "made")} {
		if err := onNode(ok, strings.NewReader(mi)); err != nil {
			t.Errorf("onNode(%s) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{filepath.Join(host, "elsewhere"), "/restore-here"} {
		err := onNode(bad, strings.NewReader(mi))
		if !errors.Is(err, ErrNotOnNode) || !strings.Contains(err.Error(), "restored into the container and lost") {
			t.Errorf("onNode(%s) = %v, want ErrNotOnNode saying why", bad, err)
		}
	}
}
