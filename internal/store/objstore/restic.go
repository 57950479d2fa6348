package objstore

import (
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ResticLocation is how restic reaches a directory of the store: its own
// s3 backend for s3:// stores, a local path for file:// stores.
type ResticLocation struct {
	// Repository is RESTIC_REPOSITORY.
	Repository string
	// Env carries the credentials and region (never arguments).
	Env []string
	// Options are global flags (-o s3.bucket-lookup=path, --cacert FILE).
	Options []string
}

// Restic returns the location of dir (e.g. "<cluster-id>/restic") in the
// store c names. caDir is where an inline CA is written for restic's
// --cacert.
func (c Config) Restic(dir, caDir string) (ResticLocation, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return ResticLocation{}, fmt.Errorf("store URL %q: %w", c.URL, err)
	}
	switch u.Scheme {
	case "file":
		return ResticLocation{Repository: filepath.Join(u.Path, filepath.FromSlash(dir))}, nil
	case "s3":
	default:
		return ResticLocation{}, fmt.Errorf("store URL %q: unknown scheme %q (want s3:// or file://)", c.URL, u.Scheme)
	}
	access, secret, err := c.credentials()
	if err != nil {
		return ResticLocation{}, err
	}
	endpoint, scheme := c.Endpoint, "https"
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	if strings.Contains(endpoint, "://") {
		e, err := url.Parse(endpoint)
		if err != nil {
			return ResticLocation{}, fmt.Errorf("S3 endpoint %q: %w", c.Endpoint, err)
		}
		endpoint, scheme = e.Host, e.Scheme
	}
	loc := ResticLocation{
		Repository: fmt.Sprintf("s3:%s://%s/%s", scheme, endpoint, path.Join(u.Host, strings.Trim(u.Path, "/"), dir)),
		Env:        []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret},
	}
	if c.Region != "" {
		loc.Env = append(loc.Env, "AWS_DEFAULT_REGION="+c.Region)
	}
	if c.SessionToken != "" {
		loc.Env = append(loc.Env, "AWS_SESSION_TOKEN="+c.SessionToken)
	}
	if c.PathStyle {
		loc.Options = append(loc.Options, "-o", "s3.bucket-lookup=path")
	}
	switch {
	case c.CAFile != "":
		loc.Options = append(loc.Options, "--cacert", c.CAFile)
	case len(c.CAPEM) > 0:
		if err := os.MkdirAll(caDir, 0o700); err != nil {
			return ResticLocation{}, err
		}
		p := filepath.Join(caDir, "store-ca.crt")
		if err := os.WriteFile(p, c.CAPEM, 0o600); err != nil {
			return ResticLocation{}, err
		}
		loc.Options = append(loc.Options, "--cacert", p)
	}
	return loc, nil
}
