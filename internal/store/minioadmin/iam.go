package minioadmin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// UserInfo is what the admin API tells of a user.
type UserInfo struct {
	Status string `json:"status"`
	// Policies are the policies attached to the user.
	Policies []string `json:"-"`
	// PolicyName is how MinIO sends them: comma-separated.
	PolicyName string `json:"policyName,omitempty"`
}

// UserInfo asks for a user; a missing one is ErrNoSuchUser.
func (c *Client) UserInfo(ctx context.Context, accessKey string) (UserInfo, error) {
	_, body, err := c.call(ctx, http.MethodGet, "user-info", url.Values{"accessKey": {accessKey}}, nil)
	if err != nil {
		return UserInfo{}, fmt.Errorf("user info of %s: %w", accessKey, err)
	}
	var u UserInfo
	if err := json.Unmarshal(body, &u); err != nil {
		return UserInfo{}, fmt.Errorf("user info of %s: %w: %w", accessKey, ErrNotMinIO, err)
	}
	for p := range strings.SplitSeq(u.PolicyName, ",") {
		if p = strings.TrimSpace(p); p != "" {
			u.Policies = append(u.Policies, p)
		}
	}
	return u, nil
}

// SetUser creates the user or sets its secret key, enabled.
func (c *Client) SetUser(ctx context.Context, accessKey, secretKey string) error {
	plain, err := json.Marshal(struct {
		SecretKey string `json:"secretKey"`
		Status    string `json:"status"`
	}{secretKey, "enabled"})
	if err != nil {
		return err
	}
	body, err := encrypt(c.secret, plain)
	if err != nil {
		return fmt.Errorf("set user %s: encrypt: %w", accessKey, err)
	}
	if _, _, err := c.call(ctx, http.MethodPut, "add-user", url.Values{"accessKey": {accessKey}}, body); err != nil {
		return fmt.Errorf("set user %s: %w", accessKey, err)
	}
	return nil
}

// AddPolicy creates the canned policy or replaces its document.
func (c *Client) AddPolicy(ctx context.Context, name string, doc []byte) error {
	if _, _, err := c.call(ctx, http.MethodPut, "add-canned-policy", url.Values{"name": {name}}, doc); err != nil {
		return fmt.Errorf("add policy %s: %w", name, err)
	}
	return nil
}

// codeAlreadyApplied answers an attach of a policy the user has.
const codeAlreadyApplied = "XMinioAdminPolicyChangeAlreadyApplied"

// AttachPolicy attaches a canned policy to a user, keeping the others it
// has; attaching one it has is no change. A server older than the
// builtin IDP's attach call gets set-user-or-group-policy, which makes
// the policy the user's only one.
func (c *Client) AttachPolicy(ctx context.Context, user, policy string) error {
	plain, err := json.Marshal(struct {
		Policies []string `json:"policies"`
		User     string   `json:"user"`
	}{[]string{policy}, user})
	if err != nil {
		return err
	}
	body, err := encrypt(c.secret, plain)
	if err != nil {
		return fmt.Errorf("attach policy %s to %s: encrypt: %w", policy, user, err)
	}
	status, answer, err := c.call(ctx, http.MethodPost, "idp/builtin/policy/attach", nil, body)
	var ae *Error
	switch {
	case err == nil:
		if status == http.StatusOK && len(answer) > 0 {
			// The answer (which policies were attached) is encrypted;
			// one that does not open is not from this server.
			if _, derr := decrypt(c.secret, answer); derr != nil {
				return fmt.Errorf("attach policy %s to %s: %w", policy, user, derr)
			}
		}
		return nil
	case errors.As(err, &ae) && ae.Code == codeAlreadyApplied:
		return nil
	case errors.Is(err, ErrNotAdmin):
		return fmt.Errorf("attach policy %s to %s: %w", policy, user, err)
	case olderServer(status, ae):
		q := url.Values{"policyName": {policy}, "userOrGroup": {user}, "isGroup": {"false"}}
		if _, _, ferr := c.call(ctx, http.MethodPut, "set-user-or-group-policy", q, nil); ferr != nil {
			return fmt.Errorf("attach policy %s to %s: %w (and set-user-or-group-policy: %w)", policy, user, err, ferr)
		}
		return nil
	}
	return fmt.Errorf("attach policy %s to %s: %w", policy, user, err)
}

// olderServer: the answer of a MinIO without the builtin IDP's attach
// call (an unknown admin path is 400 BadRequest, or 426 on some versions).
func olderServer(status int, ae *Error) bool {
	if ae == nil {
		return false
	}
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusUpgradeRequired:
		return ae.Code != "XMinioAdminNoSuchPolicy" && ae.Code != "XMinioAdminNoSuchUser"
	}
	return false
}

// NodeUser is a user install owns, bound to one policy.
type NodeUser struct {
	AccessKey string
	// Policy is the canned policy's name and Document its JSON.
	Policy   string
	Document []byte
}

// Ensured says what Ensure found and did.
type Ensured struct {
	// Existed: the user was there before.
	Existed bool
	// SecretSet: the user's secret key is now the one given.
	SecretSet bool
}

// Ensure makes the policy exist with u's document and the user exist with
// the policy attached. It sets the user's secret key to secretKey when the
// user is new or keep is false; with keep an existing user's key stays.
// It asks before it writes: credentials that are not an admin's, or an
// endpoint that is not MinIO, change nothing.
func (c *Client) Ensure(ctx context.Context, u NodeUser, secretKey string, keep bool) (Ensured, error) {
	var r Ensured
	info, err := c.UserInfo(ctx, u.AccessKey)
	switch {
	case err == nil:
		r.Existed = true
	case errors.Is(err, ErrNoSuchUser):
	default:
		return r, err
	}
	if err := c.AddPolicy(ctx, u.Policy, u.Document); err != nil {
		return r, err
	}
	if !r.Existed || !keep {
		if err := c.SetUser(ctx, u.AccessKey, secretKey); err != nil {
			return r, err
		}
		r.SecretSet = true
	}
	if r.Existed && slices.Contains(info.Policies, u.Policy) {
		return r, nil
	}
	return r, c.AttachPolicy(ctx, u.AccessKey, u.Policy)
}
