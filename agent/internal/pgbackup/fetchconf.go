package pgbackup

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-dr/kubectl-dr/internal/durable"
	"github.com/kubectl-dr/kubectl-dr/internal/store/objstore"
)

// FetchSetup is what restore_command needs on the node: a dr-agent binary
// and the store's settings, readable by the database's user.
type FetchSetup struct {
	// AgentBinary is copied next to the restore (the agent's own may live
	// in its container, out of the database's reach).
	AgentBinary string
	ClusterID   string
	Store       objstore.Config
}

// FetchDir is where restore_command's binary and store settings for the
// restore into target live.
func FetchDir(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".wal-fetch")
}

// writeFetchDir writes <parent>/.<name>.wal-fetch/ with the binary, the
// store settings and the credentials (0600, owned by uid) and returns the
// restore_command prefix. It sits beside the data directory, not in it, so
// a later base backup of the restored database does not carry the keys.
func writeFetchDir(target string, setup FetchSetup, source string, uid, gid int) (string, error) {
	dir := FetchDir(target)
	if err := durable.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	own := func(p string) error { return os.Lchown(p, uid, gid) }
	if err := own(dir); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "dr-agent")
	if err := copyFile(setup.AgentBinary, bin, 0o755); err != nil {
		return "", fmt.Errorf("copy dr-agent for restore_command: %w", err)
	}
	store := setup.Store
	secret := func(name, value, file string) (string, error) {
		if file != "" {
			data, err := os.ReadFile(file)
			if err != nil {
				return "", err
			}
			value = strings.TrimSpace(string(data))
		}
		if value == "" {
			return "", nil
		}
		p := filepath.Join(dir, name)
		if err := durable.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
			return "", err
		}
		return p, own(p)
	}
	var err error
	if store.AccessKeyFile, err = secret("access-key", store.AccessKey, store.AccessKeyFile); err != nil {
		return "", err
	}
	if store.SecretKeyFile, err = secret("secret-key", store.SecretKey, store.SecretKeyFile); err != nil {
		return "", err
	}
	if store.CAFile != "" || len(store.CAPEM) > 0 {
		pem := store.CAPEM
		if store.CAFile != "" {
			if pem, err = os.ReadFile(store.CAFile); err != nil {
				return "", err
			}
		}
		if store.CAFile, err = secret("ca.crt", string(pem), ""); err != nil {
			return "", err
		}
	}
	cfg := struct {
		ClusterID string          `json:"clusterID"`
		Store     objstore.Config `json:"store"`
	}{setup.ClusterID, store}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "store.yaml")
	if err := durable.WriteFile(conf, data, 0o600); err != nil {
		return "", err
	}
	if err := own(conf); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s wal fetch --config %s %s", bin, conf, source), nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	_, _, err = durable.Copy(dst, in, mode)
	return err
}
