package kbs

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
)

// maxPolicySize bounds a policy YAML body.
const maxPolicySize = 64 << 10

// WrapRequest is the body of POST /admin/v0/keys/<name>/wrap.
type WrapRequest struct {
	// DataKey is the 32-byte data key, base64 (standard alphabet).
	DataKey string `json:"data_key"`
}

// WrapResponse is the response body of POST /admin/v0/keys/<name>/wrap.
type WrapResponse struct {
	// WrappedKey is Vault Transit's ciphertext of the data key ("vault:v1:...").
	WrappedKey string `json:"wrapped_key"`
	// Resource is the KBS resource path of the data key,
	// cove/<name>/<base64url of WrappedKey, no padding>.
	Resource string `json:"resource"`
}

// ResourcePath returns the KBS resource path under which the broker
// releases the data key that Transit key name wrapped into wrappedKey.
func ResourcePath(name, wrappedKey string) string {
	return resourceRepository + "/" + name + "/" + base64.RawURLEncoding.EncodeToString([]byte(wrappedKey))
}

func (s *Server) handleCreateKey(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkName("key", name); err != nil {
		return errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	if err := s.vault.CreateKey(ctx, name); err != nil {
		return vaultProblem(err)
	}
	s.log.Info("transit key created", "key", name)
	writeJSON(w, http.StatusCreated, map[string]string{"name": name})
	return nil
}

func (s *Server) handleGetKey(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkName("key", name); err != nil {
		return errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}
	ctx, cancel := vaultContext(r)
	defer cancel()
	if err := s.requireKey(ctx, name); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"name": name})
	return nil
}

func (s *Server) handleWrap(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkName("key", name); err != nil {
		return errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}
	var req WrapRequest
	if err := decodeJSON(r, &req); err != nil {
		return errorf(http.StatusBadRequest, KindInvalidRequest,
			"invalid wrap request: "+err.Error())
	}
	dataKey, err := base64.StdEncoding.DecodeString(req.DataKey)
	if err != nil || len(dataKey) != dataKeySize {
		return errorf(http.StatusBadRequest, KindInvalidRequest,
			"data_key must be 32 bytes in standard base64")
	}
	defer clear(dataKey)

	ctx, cancel := vaultContext(r)
	defer cancel()
	if err := s.requireKey(ctx, name); err != nil {
		return err
	}
	wrapped, err := s.vault.Wrap(ctx, name, dataKey)
	if err != nil {
		return vaultProblem(err)
	}
	s.log.Info("data key wrapped", "key", name, "wrapped_key_sha256", fingerprint(wrapped))
	writeJSON(w, http.StatusOK, WrapResponse{WrappedKey: wrapped, Resource: ResourcePath(name, wrapped)})
	return nil
}

func (s *Server) handlePutPolicy(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := checkName("policy", name); err != nil {
		return errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPolicySize+1))
	if err != nil {
		return err
	}
	if len(body) > maxPolicySize {
		return errorf(http.StatusRequestEntityTooLarge, KindInvalidRequest,
			fmt.Sprintf("policy exceeds %d bytes", maxPolicySize))
	}
	policy, err := ParsePolicy(body)
	if err != nil {
		return errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}
	if err := s.store.putPolicy(name, policy); err != nil {
		return fmt.Errorf("storing policy %q: %w", name, err)
	}
	s.log.Info("policy set", "policy", name, "measurements", len(policy.Reference.Measurements))
	writeJSON(w, http.StatusOK, map[string]string{"name": name})
	return nil
}

func (s *Server) handleGetPolicy(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	policy, ok := s.store.policy(name)
	if !ok {
		return errorf(http.StatusNotFound, KindNotFound,
			fmt.Sprintf("policy %q does not exist", name))
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(policy.Source)
	return nil
}

func (s *Server) handlePutGrant(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	if err := checkName("key", key); err != nil {
		return errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestSize))
	if err != nil {
		return err
	}
	grant, err := parseGrant(body)
	if err != nil {
		return errorf(http.StatusBadRequest, KindInvalidRequest, err.Error())
	}
	if _, ok := s.store.policy(grant.Policy); !ok {
		return errorf(http.StatusBadRequest, KindInvalidRequest,
			fmt.Sprintf("policy %q does not exist; set it with PUT /admin/v0/policies/%s first", grant.Policy, grant.Policy))
	}
	if err := s.store.putGrant(key, grant); err != nil {
		return fmt.Errorf("storing the grant of key %q: %w", key, err)
	}
	s.log.Info("grant set", "key", key, "policy", grant.Policy, "job_digests", grant.JobDigests)
	writeJSON(w, http.StatusOK, grant)
	return nil
}

func (s *Server) handleGetGrant(w http.ResponseWriter, r *http.Request) error {
	key := r.PathValue("key")
	grant, ok := s.store.grant(key)
	if !ok {
		return errorf(http.StatusNotFound, KindNotFound, fmt.Sprintf("key %q has no grant", key))
	}
	writeJSON(w, http.StatusOK, grant)
	return nil
}

// vaultProblem maps a Vault error of an admin request to its problem.
func vaultProblem(err error) error {
	if _, ok := err.(*httpError); ok {
		return err
	}
	return errorf(http.StatusServiceUnavailable, KindVaultUnavailable,
		err.Error()+"; check that Vault is up and unsealed, then retry")
}

// requireKey returns a 404 problem when the Transit key name does not
// exist, and the problem of vaultProblem when Vault cannot tell.
func (s *Server) requireKey(ctx context.Context, name string) error {
	exists, err := s.vault.KeyExists(ctx, name)
	if err != nil {
		return vaultProblem(err)
	}
	if !exists {
		return errorf(http.StatusNotFound, KindNotFound,
			fmt.Sprintf("transit key %q does not exist; create it with POST /admin/v0/keys/%s first", name, name))
	}
	return nil
}
