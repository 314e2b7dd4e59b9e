package kbs

import (
	"container/list"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"time"
)

// maxSessions bounds the sessions held in memory. /kbs/v0/auth needs no
// credentials, so when the store is full a new session replaces the oldest
// session without a token. /kbs/v0/auth returns 503 only when every
// session has a token.
const maxSessions = 100_000

// session is one KBS handshake: created by /kbs/v0/auth, consumed by one
// /kbs/v0/attest, then used by resource requests until it expires.
type session struct {
	id      string
	tee     string
	nonce   string
	expires time.Time

	// nonceUsed is set by the first /kbs/v0/attest on the session, before
	// its evidence is checked, so that a nonce is never accepted twice.
	nonceUsed bool
	// token is the attestation token issued for the session; empty until
	// an attestation succeeded.
	token string
	// unattested is the session's element in sessionStore.unattested,
	// nil once the session has a token.
	unattested *list.Element
}

// sessionStore keeps sessions in memory. A broker restart drops them, and
// guests then start again with /kbs/v0/auth.
type sessionStore struct {
	ttl time.Duration
	now func() time.Time
	// max is the number of sessions the store holds, maxSessions except
	// in tests.
	max int

	mu       sync.Mutex
	sessions map[string]*session
	// unattested lists the ids of the sessions without a token, oldest
	// first, which are the ones a new session may replace.
	unattested *list.List
	lastSweep  time.Time
}

func newSessionStore(ttl time.Duration, now func() time.Time) *sessionStore {
	return &sessionStore{ttl: ttl, now: now, max: maxSessions,
		sessions: make(map[string]*session), unattested: list.New()}
}

// create starts a session with a fresh 32-byte nonce, base64 (standard
// alphabet) as the KBS protocol sends it. When the store is full, the new
// session replaces the oldest session without a token. create returns nil
// when every session in a full store has a token.
func (st *sessionStore) create(tee string) (*session, error) {
	nonce := make([]byte, 32)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	now := st.now()
	s := &session{
		id:      hex.EncodeToString(id),
		tee:     tee,
		nonce:   base64.StdEncoding.EncodeToString(nonce),
		expires: now.Add(st.ttl),
	}

	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweepLocked(now, false)
	if len(st.sessions) >= st.max {
		oldest := st.unattested.Front()
		if oldest != nil {
			st.deleteLocked(oldest.Value.(string))
		} else {
			st.sweepLocked(now, true)
			if len(st.sessions) >= st.max {
				return nil, nil
			}
		}
	}
	st.sessions[s.id] = s
	s.unattested = st.unattested.PushBack(s.id)
	return s, nil
}

// deleteLocked removes the session id from the store.
func (st *sessionStore) deleteLocked(id string) {
	s, ok := st.sessions[id]
	if !ok {
		return
	}
	if s.unattested != nil {
		st.unattested.Remove(s.unattested)
		s.unattested = nil
	}
	delete(st.sessions, id)
}

// beginAttest returns the session id for an attestation and marks its
// nonce used. It returns a snapshot of the session, or a reason when the
// session is unknown, expired or its nonce was already used.
func (st *sessionStore) beginAttest(id string) (session, string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, reason := st.liveLocked(id)
	if s == nil {
		return session{}, reason
	}
	if s.nonceUsed {
		return session{}, "the nonce of this session was already used for an attestation; start again with /kbs/v0/auth"
	}
	s.nonceUsed = true
	return *s, ""
}

// setToken records the token of a successful attestation, after which no
// new session replaces the session. A session replaced during its
// attestation gets no token, and its guest then uses the bearer token.
func (st *sessionStore) setToken(id, token string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s, ok := st.sessions[id]; ok {
		s.token = token
		if s.unattested != nil {
			st.unattested.Remove(s.unattested)
			s.unattested = nil
		}
	}
}

// token returns the attestation token of a live session, or a reason.
func (st *sessionStore) token(id string) (string, string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	s, reason := st.liveLocked(id)
	if s == nil {
		return "", reason
	}
	if s.token == "" {
		return "", "the session has not attested; send evidence to /kbs/v0/attest first"
	}
	return s.token, ""
}

func (st *sessionStore) liveLocked(id string) (*session, string) {
	s, ok := st.sessions[id]
	if !ok {
		return nil, "unknown session; start with /kbs/v0/auth"
	}
	if !st.now().Before(s.expires) {
		st.deleteLocked(id)
		return nil, "the session expired; start again with /kbs/v0/auth"
	}
	return s, ""
}

// sweepLocked drops expired sessions, at most once a minute unless force
// is set. A full store does not force a sweep, because the oldest session
// without a token, which create replaces, is also the first to expire.
func (st *sessionStore) sweepLocked(now time.Time, force bool) {
	if !force && now.Sub(st.lastSweep) < time.Minute {
		return
	}
	st.lastSweep = now
	for id, s := range st.sessions {
		if !now.Before(s.expires) {
			st.deleteLocked(id)
		}
	}
}
