package minioadmin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7/pkg/signer"
)

// Config says where MinIO is and who the admin is.
type Config struct {
	// Endpoint is the S3 endpoint, http(s)://HOST:PORT.
	Endpoint string
	// Region signs the requests; default us-east-1.
	Region               string
	AccessKey, SecretKey string
	// Transport reaches the endpoint (a CA of its own); default
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// Client calls MinIO's admin API as one admin.
type Client struct {
	base   *url.URL
	region string
	access string
	secret string
	http   *http.Client
}

const apiPrefix = "/minio/admin/v3/"

// maxBody bounds what is read of an answer: the calls here get a few
// hundred bytes.
const maxBody = 1 << 20

// New checks the configuration; it does no I/O.
func New(c Config) (*Client, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("MinIO endpoint %q: want http(s)://HOST[:PORT]", c.Endpoint)
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return nil, errors.New("MinIO admin credentials: the access key and the secret key are both needed")
	}
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	tr := c.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	return &Client{
		base:   &url.URL{Scheme: u.Scheme, Host: u.Host},
		region: region, access: c.AccessKey, secret: c.SecretKey,
		http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}, nil
}

// call sends one signed request and returns the body of a 2xx answer;
// any other answer is parsed into an error.
func (c *Client) call(ctx context.Context, method, op string, query url.Values, body []byte) (int, []byte, error) {
	return c.do(ctx, method, apiPrefix+op, query, body)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) (int, []byte, error) {
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.ContentLength = int64(len(body))
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	sum := sha256.Sum256(body)
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	req = signer.SignV4(*req, c.access, c.secret, "", c.region)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("MinIO admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("MinIO admin API at %s: read the answer: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, nil, parseError(resp.StatusCode, data)
	}
	if strings.HasPrefix(strings.TrimSpace(string(data)), "<") {
		// A 2xx in XML or HTML: an S3 store took the path for an object.
		return resp.StatusCode, nil, parseError(resp.StatusCode, data)
	}
	return resp.StatusCode, data, nil
}
