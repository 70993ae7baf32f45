package model

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vland/vland/internal/apierr"
)

// Limits on instance metadata (instance-metadata). Lengths in characters
// count runes, as ParseString does; the byte limits count bytes.
const (
	MaxDeviceIDLen  = 255      // characters of a device id
	MaxUserData     = 64 << 10 // bytes of user data, decoded
	MaxMetaItems    = 128      // entries in meta
	MaxMetaLen      = 255      // characters of a meta key or value
	MaxPublicKeys   = 100      // entries in public_keys
	MaxKeyNameLen   = 255      // characters of a public key's name
	MaxPublicKeyLen = 16 << 10 // bytes of one public key
	// MaxInstanceMetadataSize bounds the object as stored (JSON), far
	// below etcd's default 1.5 MiB request limit: the limits above allow
	// 100 keys of 16 KiB, which no instance needs all at once and which
	// would otherwise fail in the store instead of answering 400.
	MaxInstanceMetadataSize = 256 << 10
)

// InstanceMetadata is what the metadata service tells one instance about
// itself: its name, host name, user data, key-value metadata, public keys
// and availability zone. It is keyed by the instance's device_id (the
// device_id of its ports) and belongs to the project owning them.
type InstanceMetadata struct {
	// Standard holds the project, name, timestamps and revision; its ID
	// is the device id (so lists sort and paginate by it), and it has no
	// description or tags.
	Standard
	// DeviceID is the instance's id (Nova's server id), equal to ID.
	DeviceID string `json:"device_id"`
	// Hostname is a DNS name ("" when none was given).
	Hostname string `json:"hostname"`
	// UserData is the user data, decoded; nil when there is none. It is
	// stored (and shown) as base64, which is how encoding/json renders
	// a []byte.
	UserData []byte `json:"user_data,omitempty"`
	// Meta is the instance's key-value metadata ("meta" in meta_data.json).
	Meta map[string]string `json:"meta"`
	// PublicKeys maps key names to public keys (OpenSSH format in practice).
	PublicKeys map[string]string `json:"public_keys"`
	// AvailabilityZone is the zone the instance runs in ("" when unknown).
	AvailabilityZone string `json:"availability_zone"`
}

// InstanceMetadataSpec is the attribute map of instance metadata. A PUT
// replaces the object, so every content attribute is writable (Put) and
// none is required; the rest are read-only.
var InstanceMetadataSpec = &Spec{
	Singular: "instance_metadata",
	// "metadata" has no plural: the list is {"instance_metadata": [...]}.
	Plural: "instance_metadata",
	Attrs: []*Attr{
		{Name: "id"},
		{Name: "device_id", Put: true, Parse: ParseDeviceID},
		{Name: "project_id", Put: true, Parse: ParseString(255)},
		{Name: "tenant_id", Put: true, Parse: ParseString(255)},
		{Name: "name", Put: true, Parse: parseStringOrNull},
		{Name: "hostname", Put: true, Parse: ParseHostname},
		{Name: "user_data", Put: true, Parse: ParseUserData},
		{Name: "meta", Put: true, Parse: ParseMeta},
		{Name: "public_keys", Put: true, Parse: ParsePublicKeys},
		{Name: "availability_zone", Put: true, Parse: parseStringOrNull},
		{Name: "created_at"},
		{Name: "updated_at"},
		{Name: "revision_number"},
	},
}

// DecodeInstanceMetadata validates the body of PUT
// /v2.0/instance-metadata/{deviceID}: {"instance_metadata": {...}}. The
// fields are typed: strings, user_data as []byte (nil: none), meta and
// public_keys as map[string]string. A device_id in the body must be the
// one in the URL.
func DecodeInstanceMetadata(deviceID string, body map[string]any) (Fields, error) {
	if _, err := ParseDeviceID(deviceID); err != nil {
		return nil, apierr.InvalidAttr("device_id", err.Error())
	}
	raw, ok := body[InstanceMetadataSpec.Singular]
	if !ok {
		return nil, apierr.BadRequest("Unable to find '%s' in request body", InstanceMetadataSpec.Singular)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, apierr.BadRequest("Body contains invalid data")
	}
	f, err := InstanceMetadataSpec.Decode(m, Update)
	if err != nil {
		return nil, err
	}
	if v, ok := f["device_id"]; ok {
		if v.(string) != deviceID {
			return nil, apierr.InvalidAttr("device_id", "'"+v.(string)+"' is not the device of the URL, '"+deviceID+"'")
		}
		delete(f, "device_id")
	}
	return f, nil
}

// NewInstanceMetadata returns empty metadata of a device.
func NewInstanceMetadata(deviceID, project string) *InstanceMetadata {
	now := Now()
	return &InstanceMetadata{
		Standard: Standard{ID: deviceID, ProjectID: project, CreatedAt: now, UpdatedAt: now},
		DeviceID: deviceID,
		Meta:     map[string]string{},
		// Keys default to none, not to a nil map, so views and the agent
		// never tell the two apart.
		PublicKeys: map[string]string{},
	}
}

// Replace sets the content a PUT gives and clears what it leaves out: a
// PUT replaces the whole instance metadata (project_id is the caller's
// business, see the service).
func (m *InstanceMetadata) Replace(f Fields) {
	str := func(n string) string { s, _ := f[n].(string); return s }
	m.Name = str("name")
	m.Hostname = str("hostname")
	m.AvailabilityZone = str("availability_zone")
	m.UserData, _ = f["user_data"].([]byte)
	m.Meta = map[string]string{}
	if v, ok := f["meta"].(map[string]string); ok {
		m.Meta = maps.Clone(v)
	}
	m.PublicKeys = map[string]string{}
	if v, ok := f["public_keys"].(map[string]string); ok {
		m.PublicKeys = maps.Clone(v)
	}
}

// CheckSize refuses metadata whose stored form exceeds
// MaxInstanceMetadataSize.
func (m *InstanceMetadata) CheckSize() error {
	data, err := json.Marshal(m)
	if err != nil {
		return apierr.BadRequest("Invalid instance metadata: %v", err)
	}
	if len(data) > MaxInstanceMetadataSize {
		return apierr.InvalidAttr(InstanceMetadataSpec.Singular,
			reason("it is %d bytes as stored, more than %d", len(data), MaxInstanceMetadataSize).Error())
	}
	return nil
}

// View implements Object.
func (m *InstanceMetadata) View() map[string]any {
	v := make(map[string]any, 14)
	m.Standard.view(v)
	delete(v, "description")
	delete(v, "tags")
	v["device_id"] = m.DeviceID
	v["hostname"] = m.Hostname
	if m.UserData != nil {
		v["user_data"] = base64.StdEncoding.EncodeToString(m.UserData)
	} else {
		v["user_data"] = nil
	}
	v["meta"] = orEmptyStrings(m.Meta)
	v["public_keys"] = orEmptyStrings(m.PublicKeys)
	v["availability_zone"] = m.AvailabilityZone
	return v
}

// orEmptyStrings is a copy of m, never nil.
func orEmptyStrings(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

// ParseDeviceID accepts a device id usable as a key: a non-empty string of
// at most MaxDeviceIDLen characters, without '/' (a key separator) or
// control characters.
func ParseDeviceID(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, reason("'%s' is not a valid string", show(v))
	}
	switch {
	case s == "":
		return nil, reason("the device id is empty")
	case !utf8.ValidString(s):
		return nil, reason("'%s' is not valid UTF-8", s)
	case utf8.RuneCountInString(s) > MaxDeviceIDLen:
		return nil, reason("'%s' exceeds maximum length of %d", s, MaxDeviceIDLen)
	case strings.ContainsRune(s, '/') || strings.IndexFunc(s, unicode.IsControl) >= 0:
		return nil, reason("'%s' contains '/' or a control character", s)
	}
	return s, nil
}

// hostLabel is one label of a host name: letters, digits and hyphens, not
// starting or ending with a hyphen (RFC 1123).
var hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// ParseHostname accepts a host name: dot-separated labels of letters,
// digits and hyphens, at most 255 characters; null and "" mean none. Case
// is kept.
func ParseHostname(v any) (any, error) {
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, reason("'%s' is not a valid string", show(v))
	}
	if s == "" {
		return s, nil
	}
	if len(s) > 255 {
		return nil, reason("'%s' exceeds maximum length of %d", s, 255)
	}
	for _, l := range strings.Split(s, ".") {
		if !hostLabel.MatchString(l) {
			return nil, reason("'%s' is not a valid hostname: label '%s' must be 1-63 letters, digits or hyphens, not starting or ending with a hyphen", s, l)
		}
	}
	return s, nil
}

// userData is the standard base64 alphabet with padding, refusing
// non-zero trailing bits so that one text means one byte string (line
// breaks are still skipped, as the encoding package always does).
var userData = base64.StdEncoding.Strict()

// ParseUserData accepts base64 (standard alphabet, padded) of at most
// MaxUserData bytes and returns the decoded bytes; null and "" mean none
// (nil).
func ParseUserData(v any) (any, error) {
	if v == nil {
		return []byte(nil), nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, reason("'%s' is not a valid string", show(v))
	}
	if s == "" {
		return []byte(nil), nil
	}
	// Refuse far too long input before decoding it (4 characters carry 3
	// bytes; line breaks may add up to one character in two).
	if len(s) > 2*(MaxUserData/3+1)*4 {
		return nil, reason("user data of %d base64 characters exceeds %d bytes decoded", len(s), MaxUserData)
	}
	b, err := userData.DecodeString(s)
	if err != nil {
		return nil, reason("user data is not valid base64: %v", err)
	}
	if len(b) > MaxUserData {
		return nil, reason("user data is %d bytes decoded, more than %d", len(b), MaxUserData)
	}
	if len(b) == 0 {
		// Only line breaks.
		return []byte(nil), nil
	}
	return b, nil
}

// stringMap checks a JSON object of strings; null is an empty map.
func stringMap(v any, what string, maxItems int, key, val func(k, v string) error) (map[string]string, error) {
	if v == nil {
		return map[string]string{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, reason("'%s' is not a dictionary", show(v))
	}
	if len(m) > maxItems {
		return nil, reason("%d %s exceed the limit of %d", len(m), what, maxItems)
	}
	out := make(map[string]string, len(m))
	for _, k := range keys(m) {
		s, ok := m[k].(string)
		if !ok {
			return nil, reason("the value of '%s' is '%s', not a string", k, show(m[k]))
		}
		if err := key(k, s); err != nil {
			return nil, err
		}
		if err := val(k, s); err != nil {
			return nil, err
		}
		out[k] = s
	}
	return out, nil
}

// ParseMeta accepts instance metadata items: a JSON object of at most
// MaxMetaItems strings, keys 1 to MaxMetaLen characters, values at most
// MaxMetaLen. It returns map[string]string.
func ParseMeta(v any) (any, error) {
	return stringMap(v, "meta items", MaxMetaItems,
		func(k, _ string) error {
			if n := utf8.RuneCountInString(k); n == 0 || n > MaxMetaLen {
				return reason("key '%s' must be 1 to %d characters", k, MaxMetaLen)
			}
			return nil
		},
		func(k, s string) error {
			if utf8.RuneCountInString(s) > MaxMetaLen {
				return reason("the value of '%s' exceeds maximum length of %d", k, MaxMetaLen)
			}
			return nil
		})
}

// ParsePublicKeys accepts public keys by name: a JSON object of at most
// MaxPublicKeys non-empty strings of at most MaxPublicKeyLen bytes, named
// by 1 to MaxKeyNameLen characters without control characters (the names
// appear in the metadata service's line-oriented listings). It returns
// map[string]string.
func ParsePublicKeys(v any) (any, error) {
	return stringMap(v, "public keys", MaxPublicKeys,
		func(k, _ string) error {
			if n := utf8.RuneCountInString(k); n == 0 || n > MaxKeyNameLen || strings.IndexFunc(k, unicode.IsControl) >= 0 {
				return reason("key name '%s' must be 1 to %d characters without control characters", k, MaxKeyNameLen)
			}
			return nil
		},
		func(k, s string) error {
			if s == "" || len(s) > MaxPublicKeyLen {
				return reason("public key '%s' must be 1 to %d bytes", k, MaxPublicKeyLen)
			}
			return nil
		})
}
