package kbs

import (
	"net/http"
	"testing"
	"time"

	"cove.dev/cove/attest/simsnp"
)

func newFullSessionStore(t *testing.T, capacity int) (*sessionStore, []*session) {
	t.Helper()
	now := time.Now()
	st := newSessionStore(time.Minute, func() time.Time { return now })
	st.max = capacity
	var created []*session
	for range capacity {
		s, err := st.create(supportedTEE)
		if err != nil || s == nil {
			t.Fatalf("create = %v, %v before the store is full", s, err)
		}
		created = append(created, s)
	}
	return st, created
}

func TestFullSessionStoreReplacesOldestUnattested(t *testing.T) {
	st, created := newFullSessionStore(t, 3)
	st.setToken(created[0].id, "token-0")

	for i := range 2 {
		s, err := st.create(supportedTEE)
		if err != nil || s == nil {
			t.Fatalf("create %d on a full store = %v, %v, want a new session", i, s, err)
		}
	}
	if token, reason := st.token(created[0].id); token != "token-0" {
		t.Errorf("attested session: token %q, reason %q, want token-0", token, reason)
	}
	for _, old := range created[1:] {
		if _, reason := st.beginAttest(old.id); reason == "" {
			t.Errorf("session %s was not replaced", old.id)
		}
	}
	if n := len(st.sessions); n != 3 {
		t.Errorf("store holds %d sessions, want 3", n)
	}
}

func TestFullSessionStoreOfAttestedSessions(t *testing.T) {
	st, created := newFullSessionStore(t, 2)
	for _, s := range created {
		st.setToken(s.id, "token")
	}
	if s, err := st.create(supportedTEE); s != nil || err != nil {
		t.Errorf("create = %v, %v, want nil when every session has a token", s, err)
	}
}

// TestAuthFloodDoesNotLockOutGuests fills the session store through
// /kbs/v0/auth, as a client without credentials can, and then runs a
// guest's whole handshake and release.
func TestAuthFloodDoesNotLockOutGuests(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	b.server.sessions.max = 20
	flood := newProtocol(t, b)
	for range 2 * b.server.sessions.max {
		flood.auth()
	}

	p := newProtocol(t, b)
	nonce := p.auth()
	for range b.server.sessions.max / 2 {
		flood.auth()
	}
	key := p.newTEEKey()
	if status, body := p.attest(nonce, key, device(t, simsnp.LaunchParams{}), nil); status != http.StatusOK {
		t.Fatalf("attest after the flood: status %d: %s", status, body)
	}
	for range 2 * b.server.sessions.max {
		flood.auth()
	}
	if status, body := p.get("/kbs/v0/resource/" + b.resource); status != http.StatusOK {
		t.Fatalf("resource after the flood: status %d: %s", status, body)
	}
}
