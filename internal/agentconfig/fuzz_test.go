package agentconfig

import "testing"

// The agent's config comes from a ConfigMap anyone with edit rights on it
// can change: Parse must refuse what it cannot use, never panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("nodeName: n1\ntls: {ca: /c, cert: /c, key: /k}\n"))
	f.Add([]byte("nodeName: n1\ntls: {ca: /c, cert: /c, key: /k}\nstore: {url: s3://b/p}\netcd: {schedule: '0 */6 * * *', retention: {keepLast: 3}}\nwal: {sources: [{name: pg-main, spool: /s}]}\n"))
	f.Add([]byte("etcd: {schedule: 'not cron'}"))
	f.Add([]byte("{"))
	f.Add([]byte("nodeName: n1\ntls: {ca: /c, cert: /c, key: /k}\nrestic: {paths: [/proc/1/root/etc]}\nrestore: {stopCommand: [sh, -c, id]}\nlisten: '0.0.0.0:1'\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = Parse(data, "config.yaml")
	})
}
