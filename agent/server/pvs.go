package server

import (
	"context"
	"os"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// pvClient lists PersistentVolumes with the DaemonSet's service account;
// made on first use, nil outside a cluster.
type pvClient struct {
	once sync.Once
	cs   kubernetes.Interface
}

// persistentVolumePaths maps the host paths of the cluster's hostPath and
// local PersistentVolumes to their claims ("namespace/name"). It answers
// only inside the cluster (the DaemonSet's service account may list PVs);
// elsewhere directory names are all the agent has.
func (c *pvClient) persistentVolumePaths(ctx context.Context) (map[string]string, error) {
	c.once.Do(func() {
		if os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
			return
		}
		cfg, err := rest.InClusterConfig()
		if err != nil {
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
