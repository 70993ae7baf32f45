package identity

import (
	"errors"
	"slices"
	"testing"
)

// FuzzAuthRequest feeds arbitrary bodies to the auth-request decoder: it
// must never panic, and must either reject the body as a client error or
// return a request naming a user or a token.
func FuzzAuthRequest(f *testing.F) {
	for _, seed := range []string{
		`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"admin","domain":{"name":"Default"},"password":"p@ss:w\"rd!"}}},"scope":{"project":{"name":"admin","domain":{"id":"default"}}}}}`,
		`{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"0123456789abcdef0123456789abcdef","password":""}}},"scope":{"project":{"id":"x"}}}}`,
		`{"auth":{"identity":{"methods":["token"],"token":{"id":"abc.def"}},"scope":"unscoped"}}`,
		`{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"u","password":"p"}}},"scope":{"domain":{"name":"Default"}}}}`,
		`{"auth":{"identity":{"methods":["totp"]}}}`,
		`{"auth":{"identity":{"methods":[]}}}`,
		`{"auth":null}`,
		`[]`,
		``,
		`{"auth":{"identity":{"methods":["password"],"password":{"user":{"id":"u","password":"p"}}},"scope":{"project":{"name":"p","domain":{}}}}} trailing`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := decodeAuthRequest(data)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || (ae.code != 400 && ae.code != 401) {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		switch in.method {
		case methodPassword:
			if in.userID == "" && (in.userName == "" || (in.userDomain.ID == "" && in.userDomain.Name == "")) {
				t.Fatalf("password request without a resolvable user: %+v", in)
			}
		case methodToken:
			if in.token == "" {
				t.Fatalf("token request without a token: %+v", in)
			}
		default:
			t.Fatalf("decoded request with no method: %+v", in)
		}
		if in.projectName != "" && in.projectDomain.ID == "" && in.projectDomain.Name == "" {
			t.Fatalf("project by name without a domain: %+v", in)
		}
	})
}

// FuzzTokenPayload checks that decoding any payload never panics, and that
// whatever decodes encodes back to the same bytes.
func FuzzTokenPayload(f *testing.F) {
	c := &claims{User: newID(), Project: newID(), Roles: []string{newID(), "custom-role"}, Issued: 1e15,
		Expires: 1e15 + 3600e6, Audit: []string{newAuditID(), newAuditID()}, Rev: 42, Methods: 3}
	good, err := c.marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{claimsFormat, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := unmarshalClaims(data)
		if err != nil {
			return
		}
		again, err := c.marshal()
		if err != nil {
			t.Fatalf("decoded claims %+v do not encode: %v", c, err)
		}
		back, err := unmarshalClaims(again)
		if err != nil || back.User != c.User || back.Project != c.Project || !slices.Equal(back.Roles, c.Roles) ||
			!slices.Equal(back.Audit, c.Audit) || back.Expires != c.Expires || back.Rev != c.Rev {
			t.Fatalf("round trip changed %+v into %+v (%v)", c, back, err)
		}
	})
}

func TestTokenSignatureCoversEveryByte(t *testing.T) {
	s := newSigner([]byte("0123456789abcdef0123456789abcdef"))
	c := &claims{User: newID(), Project: newID(), Roles: []string{newID()}, Issued: 1, Expires: 2, Audit: []string{newAuditID()}}
	tok, err := s.seal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.open(tok)
	if err != nil || got.User != c.User || got.Project != c.Project || got.Roles[0] != c.Roles[0] {
		t.Fatalf("open: %+v %v", got, err)
	}
	for i := range len(tok) {
		b := []byte(tok)
		b[i] ^= 1
		if _, err := s.open(string(b)); err == nil {
			t.Fatalf("token with byte %d flipped still opens", i)
		}
	}
	if _, err := newSigner([]byte("another key, another cloud......")).open(tok); err == nil {
		t.Fatal("token opens with another key")
	}
}
