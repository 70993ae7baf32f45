package identity

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// The token payload is binary: a format byte, the method bits, varints for
// the times and revision, then the ids. Ids shaped like the ones this
// service generates (32 hex digits, or 22 characters of base64url for audit
// ids) are stored as their 16 raw bytes, which keeps tokens near 200 bytes.
const (
	claimsFormat = 1

	idRaw    = 0 // uvarint length, then the bytes
	idHex    = 1 // 16 bytes, printed as 32 lowercase hex digits
	idBase64 = 2 // 16 bytes, printed as 22 characters of base64url

	maxIDs   = 64  // bounds role and audit lists when decoding
	maxIDLen = 255 // bounds one raw id when decoding
)

// marshal encodes the claims.
func (c *claims) marshal() ([]byte, error) {
	if len(c.Roles) > maxIDs || len(c.Audit) > maxIDs || c.Expires < c.Issued || c.Issued < 0 || c.Rev < 0 {
		return nil, fmt.Errorf("claims out of range")
	}
	b := []byte{claimsFormat, c.Methods}
	b = binary.AppendUvarint(b, uint64(c.Issued))
	b = binary.AppendUvarint(b, uint64(c.Expires-c.Issued))
	b = binary.AppendUvarint(b, uint64(c.Rev))
	var err error
	for _, id := range []string{c.User, c.Project} {
		if b, err = appendID(b, id); err != nil {
			return nil, err
		}
	}
	for _, list := range [][]string{c.Audit, c.Roles} {
		b = binary.AppendUvarint(b, uint64(len(list)))
		for _, id := range list {
			if b, err = appendID(b, id); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

func appendID(b []byte, id string) ([]byte, error) {
	if len(id) > maxIDLen {
		return nil, fmt.Errorf("id %q too long for a token", id)
	}
	if raw, err := hex.DecodeString(id); err == nil && len(raw) == 16 && hex.EncodeToString(raw) == id {
		return append(append(b, idHex), raw...), nil
	}
	if raw, err := base64.RawURLEncoding.DecodeString(id); err == nil && len(raw) == 16 &&
		base64.RawURLEncoding.EncodeToString(raw) == id {
		return append(append(b, idBase64), raw...), nil
	}
	b = append(b, idRaw)
	b = binary.AppendUvarint(b, uint64(len(id)))
	return append(b, id...), nil
}

// claimsReader decodes a payload, remembering the first error.
type claimsReader struct {
	b   []byte
	bad bool
}

func (r *claimsReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *claimsReader) bytes(n uint64) []byte {
	if r.bad || uint64(len(r.b)) < n {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *claimsReader) id() string {
	tag := r.bytes(1)
	if r.bad {
		return ""
	}
	switch tag[0] {
	case idHex:
		if raw := r.bytes(16); !r.bad {
			return hex.EncodeToString(raw)
		}
	case idBase64:
		if raw := r.bytes(16); !r.bad {
			return base64.RawURLEncoding.EncodeToString(raw)
		}
	case idRaw:
		n := r.uvarint()
		if n > maxIDLen {
			r.bad = true
			return ""
		}
		return string(r.bytes(n))
	default:
		r.bad = true
	}
	return ""
}

func (r *claimsReader) ids() []string {
	n := r.uvarint()
	if n > maxIDs {
		r.bad = true
	}
	var out []string
	for i := uint64(0); i < n && !r.bad; i++ {
		out = append(out, r.id())
	}
	return out
}

// unmarshalClaims decodes a payload; any malformed input is errBadToken.
func unmarshalClaims(p []byte) (*claims, error) {
	if len(p) < 2 || p[0] != claimsFormat {
		return nil, errBadToken
	}
	r := &claimsReader{b: p[2:]}
	c := &claims{Methods: p[1]}
	issued, ttl, rev := r.uvarint(), r.uvarint(), r.uvarint()
	const maxInt = 1<<63 - 1
	if issued > maxInt || ttl > maxInt-issued || rev > maxInt {
		return nil, errBadToken
	}
	c.Issued, c.Expires, c.Rev = int64(issued), int64(issued+ttl), int64(rev)
	c.User = r.id()
	c.Project = r.id()
	c.Audit = r.ids()
	c.Roles = r.ids()
	if r.bad || len(r.b) != 0 || c.User == "" || len(c.Audit) == 0 {
		return nil, errBadToken
	}
	return c, nil
}
