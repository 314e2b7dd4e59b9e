package kbs

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// namePattern is what key, policy and grant names must match: they become
// file names in the state folder and path elements in Vault and URLs.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

func checkName(what, name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("invalid %s name %q: use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit",
			what, name)
	}
	return nil
}

// Grant allows the release of one Transit key's data keys to jobs whose
// attestation the named policy accepts and whose HOST_DATA is one of the
// job digests.
type Grant struct {
	// Policy names the policy that the evidence must satisfy.
	Policy string `json:"policy"`
	// JobDigests lists the job digests (64 hex characters, 32 bytes) that
	// may receive the key. The all-zero digest is rejected: it is what
	// HOST_DATA contains when nothing was bound at launch.
	JobDigests []string `json:"job_digests"`
}

// parseGrant decodes and validates a grant, normalizing digests to lower case.
func parseGrant(data []byte) (Grant, error) {
	var g Grant
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return Grant{}, fmt.Errorf("invalid grant JSON: %v", err)
	}
	if err := checkName("policy", g.Policy); err != nil {
		return Grant{}, err
	}
	if len(g.JobDigests) == 0 {
		return Grant{}, errors.New("grant has no job_digests; list at least one job digest")
	}
	for i, d := range g.JobDigests {
		d = strings.ToLower(d)
		raw, err := hex.DecodeString(d)
		if err != nil || len(raw) != 32 {
			return Grant{}, fmt.Errorf("job_digests[%d] %q is not 64 hex characters (32 bytes)",
				i, g.JobDigests[i])
		}
		if isZero(raw) {
			return Grant{}, fmt.Errorf("job_digests[%d] is all zero, which HOST_DATA contains when no job was bound",
				i)
		}
		g.JobDigests[i] = d
	}
	return g, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// store keeps policies and grants in memory and persists them in the state
// folder: policies/<name>.yaml and grants/<key>.json, each written
// atomically. Policies read from the read-only policies folder at start
// are overridden by a stored policy of the same name.
type store struct {
	stateDir string

	mu       sync.RWMutex
	policies map[string]*Policy
	grants   map[string]Grant
}

func openStore(stateDir, policiesDir string) (*store, error) {
	if stateDir == "" {
		return nil, errors.New("the state folder is not configured")
	}
	for _, sub := range []string{"policies", "grants"} {
		if err := os.MkdirAll(filepath.Join(stateDir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("creating the state folder: %w", err)
		}
	}
	st := &store{stateDir: stateDir, policies: map[string]*Policy{}, grants: map[string]Grant{}}
	if policiesDir != "" {
		if err := st.loadPolicies(policiesDir); err != nil {
			return nil, err
		}
	}
	if err := st.loadPolicies(filepath.Join(stateDir, "policies")); err != nil {
		return nil, err
	}
	if err := st.loadGrants(); err != nil {
		return nil, err
	}
	return st, nil
}

func (st *store) loadPolicies(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		if checkName("policy", name) != nil {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		p, err := ParsePolicy(data)
		if err != nil {
			return fmt.Errorf("policy file %s: %w", f, err)
		}
		st.policies[name] = p
	}
	return nil
}

func (st *store) loadGrants() error {
	files, err := filepath.Glob(filepath.Join(st.stateDir, "grants", "*.json"))
	if err != nil {
		return err
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if checkName("key", name) != nil {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		g, err := parseGrant(data)
		if err != nil {
			return fmt.Errorf("grant file %s: %w", f, err)
		}
		st.grants[name] = g
	}
	return nil
}

func (st *store) policy(name string) (*Policy, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	p, ok := st.policies[name]
	return p, ok
}

func (st *store) grant(key string) (Grant, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	g, ok := st.grants[key]
	return g, ok
}

func (st *store) putPolicy(name string, p *Policy) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	path := filepath.Join(st.stateDir, "policies", name+".yaml")
	if err := writeFileAtomic(path, p.Source, 0o600); err != nil {
		return err
	}
	st.policies[name] = p
	return nil
}

func (st *store) putGrant(key string, g Grant) error {
	data, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	path := filepath.Join(st.stateDir, "grants", key+".json")
	if err := writeFileAtomic(path, append(data, '\n'), 0o600); err != nil {
		return err
	}
	st.grants[key] = g
	return nil
}

// writeFileAtomic replaces path with data so that a crash leaves either
// the old or the new content: it writes a temporary file in the same
// folder, syncs it, renames it over path and syncs the folder.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
