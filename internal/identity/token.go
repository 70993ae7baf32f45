package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"time"
)

// claims is what a token says about its bearer. Tokens are self-contained
// (no etcd write per issue) and sent with every API request, so they are
// encoded compactly in binary (see marshal).
type claims struct {
	User    string
	Project string // empty: unscoped
	// Roles are the ids of the roles granted on Project when the token was
	// issued (not the implied ones): removing any of them revokes the token.
	Roles   []string
	Issued  int64 // Unix microseconds
	Expires int64 // Unix microseconds
	// Audit holds the token's own audit id, then its parent's when the
	// token was obtained by rescoping another one (Keystone's audit chain).
	Audit []string
	// Rev is the identity mirror's revision when the token was issued: any
	// grant or password created after it postdates the token.
	Rev int64
	// Methods is a bit set of authMethod values.
	Methods uint8
}

// authMethod is a Keystone authentication method a token was obtained with.
type authMethod uint8

const (
	methodPassword authMethod = 1 << iota
	methodToken
)

// methodNames lists the methods in m by Keystone name.
func (c *claims) methodNames() []string {
	var out []string
	if c.Methods&uint8(methodToken) != 0 {
		out = append(out, "token")
	}
	if c.Methods&uint8(methodPassword) != 0 {
		out = append(out, "password")
	}
	if out == nil {
		out = []string{}
	}
	return out
}

func (c *claims) issuedAt() time.Time  { return time.UnixMicro(c.Issued).UTC() }
func (c *claims) expiresAt() time.Time { return time.UnixMicro(c.Expires).UTC() }

// errBadToken covers every reason a token string is not a token we signed.
var errBadToken = errors.New("malformed or forged token")

// signer seals and opens tokens with the HMAC key every server shares.
type signer struct {
	key []byte
	// macs pools keyed HMAC states: keying one costs two hash blocks and
	// allocations, on the path of every API request.
	macs *sync.Pool
}

func newSigner(key []byte) signer {
	return signer{key: key, macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// seal encodes c as "<base64url(payload)>.<base64url(hmac-sha256)>".
func (s signer) seal(c *claims) (string, error) {
	payload, err := c.marshal()
	if err != nil {
		return "", fmt.Errorf("encode token: %w", err)
	}
	enc := base64.RawURLEncoding
	body := enc.EncodeToString(payload)
	return body + "." + enc.EncodeToString(s.mac(body)), nil
}

func (s signer) mac(body string) []byte {
	h := s.macs.Get().(hash.Hash)
	defer s.macs.Put(h)
	h.Reset()
	io.WriteString(h, body)
	return h.Sum(nil)
}

// maxTokenLen bounds the work spent on a header before its signature is
// checked; real tokens are a few hundred bytes.
const maxTokenLen = 8 << 10

// open checks the signature and decodes the claims; it does not check expiry.
func (s signer) open(token string) (*claims, error) {
	if len(token) > maxTokenLen {
		return nil, errBadToken
	}
	body, sig, ok := strings.Cut(token, ".")
	if !ok {
		return nil, errBadToken
	}
	// Strict decoding: one token has exactly one spelling.
	enc := base64.RawURLEncoding.Strict()
	got, err := enc.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(body)) {
		return nil, errBadToken
	}
	payload, err := enc.DecodeString(body)
	if err != nil {
		return nil, errBadToken
	}
	c, err := unmarshalClaims(payload)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// keystoneTime formats t as Keystone does: microseconds and a Z.
func keystoneTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}
