package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// pvClient lists PersistentVolumes with the DaemonSet's service account;
// made on first use, nil outside a cluster.
type pvClient struct {
	// apiServer overrides the in-cluster service's address (HOST:PORT).
	apiServer string
	once      sync.Once
	cs        kubernetes.Interface
}

// serviceAccountDir is where a pod finds its service account's token and
// the cluster's CA.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// restConfig is the in-cluster configuration, at apiServer when set; nil
// outside a cluster.
func (c *pvClient) restConfig() (*rest.Config, error) {
	if c.apiServer == "" {
		if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
			return nil, nil
		}
		return rest.InClusterConfig()
	}
	if _, _, err := net.SplitHostPort(c.apiServer); err != nil {
		return nil, fmt.Errorf("apiServer %q: want HOST:PORT: %w", c.apiServer, err)
	}
	return &rest.Config{
		Host:            "https://" + c.apiServer,
		BearerTokenFile: filepath.Join(serviceAccountDir, "token"),
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(serviceAccountDir, "ca.crt")},
	}, nil
}

// persistentVolumePaths maps the host paths of the cluster's hostPath and
// local PersistentVolumes to their claims ("namespace/name"). It answers
// only inside the cluster (the DaemonSet's service account may list PVs);
// elsewhere directory names are all the agent has.
func (c *pvClient) persistentVolumePaths(ctx context.Context) (map[string]string, error) {
	c.once.Do(func() {
		cfg, err := c.restConfig()
		if err != nil || cfg == nil {
			return
		}
		cfg.Timeout = 5 * time.Second
		c.cs, _ = kubernetes.NewForConfig(cfg)
	})
	if c.cs == nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pvs, err := c.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, pv := range pvs.Items {
		ref := pv.Spec.ClaimRef
		if ref == nil {
			continue
		}
		var p string
		switch {
		case pv.Spec.HostPath != nil:
			p = pv.Spec.HostPath.Path
		case pv.Spec.Local != nil:
			p = pv.Spec.Local.Path
		default:
			continue
		}
		out[p] = ref.Namespace + "/" + ref.Name
	}
	return out, nil
}
