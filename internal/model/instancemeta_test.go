package model

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

const devID = "0c2b3a4d-5e6f-4a1b-8c2d-3e4f5a6b7c8d"

// decodeMeta runs a raw body through DecodeJSON and DecodeInstanceMetadata.
func decodeMeta(deviceID, body string) (Fields, error) {
	m, err := DecodeJSON(strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	return DecodeInstanceMetadata(deviceID, m)
}

func metaBody(inner string) string { return `{"instance_metadata": {` + inner + `}}` }

func TestInstanceMetadataDecodesEveryAttribute(t *testing.T) {
	data := []byte{0, 1, 2, 0xff, 0xfe, '\n', '#', '!'}
	f, err := decodeMeta(devID, metaBody(fmt.Sprintf(`"device_id": %q, "project_id": "p1", "name": "vm-1",
		"hostname": "vm-1.example", "user_data": %q, "meta": {"role": "db", "e": ""},
		"public_keys": {"mykey": "ssh-ed25519 AAAA me@host"}, "availability_zone": "az1"`,
		devID, base64.StdEncoding.EncodeToString(data))))
	if err != nil {
		t.Fatal(err)
	}
	want := Fields{
		"project_id": "p1", "name": "vm-1", "hostname": "vm-1.example", "user_data": data,
		"meta": map[string]string{"role": "db", "e": ""}, "public_keys": map[string]string{"mykey": "ssh-ed25519 AAAA me@host"},
		"availability_zone": "az1",
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("fields = %#v\nwant %#v", f, want)
	}
	m := NewInstanceMetadata(devID, "p1")
	m.Replace(f)
	if m.DeviceID != devID || m.ID != devID || !bytes.Equal(m.UserData, data) || m.Meta["role"] != "db" || m.PublicKeys["mykey"] == "" {
		t.Fatalf("object = %+v", m)
	}
	jsonEqual(t, m.View(), fmt.Sprintf(`{"id": %q, "device_id": %q, "project_id": "p1", "tenant_id": "p1", "name": "vm-1",
		"hostname": "vm-1.example", "user_data": %q, "meta": {"role": "db", "e": ""},
		"public_keys": {"mykey": "ssh-ed25519 AAAA me@host"}, "availability_zone": "az1",
		"created_at": %q, "updated_at": %q, "revision_number": 0}`,
		devID, devID, base64.StdEncoding.EncodeToString(data), m.CreatedAt, m.UpdatedAt))
}

func TestInstanceMetadataReplaceClearsWhatThePUTLeavesOut(t *testing.T) {
	m := NewInstanceMetadata(devID, "p1")
	m.Replace(Fields{"name": "a", "hostname": "a", "user_data": []byte("x"), "meta": map[string]string{"k": "v"},
		"public_keys": map[string]string{"k": "ssh-rsa A"}, "availability_zone": "z"})
	m.Replace(Fields{"name": "b"})
	jsonEqual(t, m.View(), fmt.Sprintf(`{"id": %q, "device_id": %q, "project_id": "p1", "tenant_id": "p1", "name": "b",
		"hostname": "", "user_data": null, "meta": {}, "public_keys": {}, "availability_zone": "",
		"created_at": %q, "updated_at": %q, "revision_number": 0}`, devID, devID, m.CreatedAt, m.UpdatedAt))
}

func TestInstanceMetadataNullsAndEmptiesMeanNone(t *testing.T) {
	f, err := decodeMeta(devID, metaBody(`"name": null, "hostname": null, "user_data": null, "meta": null, "public_keys": null, "availability_zone": null`))
	if err != nil {
		t.Fatal(err)
	}
	if f["user_data"].([]byte) != nil || len(f["meta"].(map[string]string)) != 0 || f["name"] != "" {
		t.Fatalf("fields = %#v", f)
	}
	for _, ud := range []string{`""`, `"\n"`, `"\r\n"`} {
		f, err := decodeMeta(devID, metaBody(`"user_data": `+ud))
		if err != nil || f["user_data"].([]byte) != nil {
			t.Errorf("user_data %s: %#v, %v; want none", ud, f["user_data"], err)
		}
	}
}

func TestInstanceMetadataUserDataLimit(t *testing.T) {
	exact := bytes.Repeat([]byte{0xa5}, MaxUserData)
	f, err := decodeMeta(devID, metaBody(fmt.Sprintf(`"user_data": %q`, base64.StdEncoding.EncodeToString(exact))))
	if err != nil || !bytes.Equal(f["user_data"].([]byte), exact) {
		t.Fatalf("64 KiB of user data: %v", err)
	}
	// Line breaks as base64(1) writes them are skipped.
	enc := base64.StdEncoding.EncodeToString(exact[:1000])
	var wrapped strings.Builder
	for i := 0; i < len(enc); i += 76 {
		wrapped.WriteString(enc[i:min(i+76, len(enc))] + "\n")
	}
	f, err = decodeMeta(devID, metaBody(fmt.Sprintf(`"user_data": %q`, wrapped.String())))
	if err != nil || !bytes.Equal(f["user_data"].([]byte), exact[:1000]) {
		t.Fatalf("wrapped base64: %v", err)
	}
	over := base64.StdEncoding.EncodeToString(append(exact, 1))
	_, err = decodeMeta(devID, metaBody(fmt.Sprintf(`"user_data": %q`, over)))
	wantAPIErr(t, err, 400, "Invalid input for user_data. Reason: user data is 65537 bytes decoded, more than 65536.")
	_, err = decodeMeta(devID, metaBody(fmt.Sprintf(`"user_data": %q`, strings.Repeat("AAAA", 100000))))
	wantAPIErr(t, err, 400, "~exceeds 65536 bytes decoded")
}

func TestInstanceMetadataRefusesInvalidInput(t *testing.T) {
	long := strings.Repeat("x", 256)
	cases := []struct{ body, msg string }{
		{`{}`, "Unable to find 'instance_metadata' in request body"},
		{`{"instance_metadata": []}`, "Body contains invalid data"},
		{metaBody(`"flavor": "m1"`), "Unrecognized attribute(s) 'flavor'"},
		{metaBody(`"created_at": "2020-01-01T00:00:00Z"`), "Cannot update read-only attribute created_at"},
		{metaBody(`"id": "x"`), "Cannot update read-only attribute id"},
		{metaBody(`"device_id": "other"`), "~is not the device of the URL"},
		{metaBody(`"tenant_id": "a", "project_id": "b"`), "'project_id' and 'tenant_id' do not match"},
		{metaBody(`"name": 5`), "Invalid input for name. Reason: '5' is not a valid string."},
		{metaBody(`"name": "` + long + `"`), "~exceeds maximum length of 255"},
		{metaBody(`"availability_zone": "` + long + `"`), "~Invalid input for availability_zone"},
		{metaBody(`"hostname": "-vm"`), "~Invalid input for hostname"},
		{metaBody(`"hostname": "vm-"`), "~not a valid hostname"},
		{metaBody(`"hostname": "vm_1"`), "~not a valid hostname"},
		{metaBody(`"hostname": "a..b"`), "~label '' must be"},
		{metaBody(`"hostname": "vm.example."`), "~not a valid hostname"},
		{metaBody(`"hostname": "` + strings.Repeat("a", 64) + `"`), "~not a valid hostname"},
		{metaBody(`"hostname": "` + strings.Repeat("abcdefg.", 32) + `"`), "~exceeds maximum length of 255"},
		{metaBody(`"hostname": true`), "~is not a valid string"},
		{metaBody(`"user_data": "not base64!"`), "~Invalid input for user_data. Reason: user data is not valid base64"},
		{metaBody(`"user_data": "YQ"`), "~not valid base64"},   // unpadded
		{metaBody(`"user_data": "YR=="`), "~not valid base64"}, // non-zero trailing bits
		{metaBody(`"user_data": "-_-_"`), "~not valid base64"}, // URL alphabet
		{metaBody(`"user_data": 12`), "~is not a valid string"},
		{metaBody(`"meta": []`), "Invalid input for meta. Reason: '[]' is not a dictionary."},
		{metaBody(`"meta": {"a": 1}`), "Invalid input for meta. Reason: the value of 'a' is '1', not a string."},
		{metaBody(`"meta": {"a": null}`), "~not a string"},
		{metaBody(`"meta": {"": "v"}`), "~key '' must be 1 to 255 characters"},
		{metaBody(`"meta": {"` + long + `": "v"}`), "~must be 1 to 255 characters"},
		{metaBody(`"meta": {"k": "` + long + `"}`), "~the value of 'k' exceeds maximum length of 255"},
		{metaBody(`"public_keys": "ssh-rsa A"`), "~is not a dictionary"},
		{metaBody(`"public_keys": {"k": ""}`), "~public key 'k' must be 1 to 16384 bytes"},
		{metaBody(`"public_keys": {"k": "` + strings.Repeat("A", MaxPublicKeyLen+1) + `"}`), "~must be 1 to 16384 bytes"},
		{metaBody(`"public_keys": {"a\nb": "ssh-rsa A"}`), "~without control characters"},
		{metaBody(`"public_keys": {"": "ssh-rsa A"}`), "~key name '' must be"},
		{metaBody(`"public_keys": {"k": ["ssh-rsa A"]}`), "~not a string"},
	}
	for _, c := range cases {
		_, err := decodeMeta(devID, c.body)
		if err == nil {
			t.Errorf("%.120s: accepted", c.body)
			continue
		}
		t.Run("", func(t *testing.T) { wantAPIErr(t, err, 400, c.msg) })
	}
}

func TestInstanceMetadataCountLimits(t *testing.T) {
	items := func(n int, val string) string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("k%03d", i)] = val
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	if _, err := decodeMeta(devID, metaBody(`"meta": `+items(MaxMetaItems, "v"))); err != nil {
		t.Errorf("128 meta items: %v", err)
	}
	_, err := decodeMeta(devID, metaBody(`"meta": `+items(MaxMetaItems+1, "v")))
	wantAPIErr(t, err, 400, "Invalid input for meta. Reason: 129 meta items exceed the limit of 128.")
	if _, err := decodeMeta(devID, metaBody(`"public_keys": `+items(MaxPublicKeys, "ssh-ed25519 AAAA"))); err != nil {
		t.Errorf("100 public keys: %v", err)
	}
	_, err = decodeMeta(devID, metaBody(`"public_keys": `+items(MaxPublicKeys+1, "k")))
	wantAPIErr(t, err, 400, "Invalid input for public_keys. Reason: 101 public keys exceed the limit of 100.")
	// Characters, not bytes: 255 three-byte runes are a valid value.
	if _, err := decodeMeta(devID, metaBody(`"meta": {"k": "`+strings.Repeat("€", 255)+`"}`)); err != nil {
		t.Errorf("255 multi-byte characters: %v", err)
	}
}

func TestInstanceMetadataStoredSizeIsBounded(t *testing.T) {
	keys := map[string]string{}
	for i := range 20 {
		keys[fmt.Sprintf("k%d", i)] = strings.Repeat("A", MaxPublicKeyLen)
	}
	m := NewInstanceMetadata(devID, "p")
	m.Replace(Fields{"public_keys": keys})
	wantAPIErr(t, m.CheckSize(), 400, "~more than 262144")
	m.Replace(Fields{"user_data": bytes.Repeat([]byte{1}, MaxUserData), "public_keys": map[string]string{"k": strings.Repeat("A", MaxPublicKeyLen)}})
	if err := m.CheckSize(); err != nil {
		t.Errorf("64 KiB of user data and a 16 KiB key: %v", err)
	}
}

func TestDeviceIDs(t *testing.T) {
	for _, ok := range []string{devID, "i-0abc", "x", strings.Repeat("é", 255)} {
		if _, err := ParseDeviceID(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []any{"", "a/b", "a\nb", "a\x00b", strings.Repeat("d", 256), 5, nil} {
		if _, err := ParseDeviceID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	_, err := decodeMeta("a/b", metaBody(``))
	wantAPIErr(t, err, 400, "~Invalid input for device_id")
}

func TestInstanceMetadataSurvivesTheStore(t *testing.T) {
	m := NewInstanceMetadata(devID, "p")
	m.Replace(Fields{"user_data": []byte{0, 0xff, '\n'}, "meta": map[string]string{"a": "b"}, "public_keys": map[string]string{"k": "v"}, "hostname": "h"})
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeAs[InstanceMetadata]()(data)
	if err != nil {
		t.Fatal(err)
	}
	got := v.(*Cached).Obj.(*InstanceMetadata)
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("after the store: %+v\nwant %+v", got, m)
	}
	if !bytes.Contains(data, []byte(`"user_data":"AP8K"`)) {
		t.Errorf("user data not stored as base64: %s", data)
	}
}

func FuzzDecodeInstanceMetadata(f *testing.F) {
	addSeeds(f,
		metaBody(``),
		`{"instance_metadata": null}`,
		metaBody(`"name": "n", "hostname": "a-b.c", "user_data": "aGVsbG8=", "meta": {"k": "v"}, "public_keys": {"k": "ssh-rsa AAA"}, "availability_zone": "z"`),
		metaBody(`"user_data": "aGVsbG8=\n", "device_id": "`+devID+`", "tenant_id": "p"`),
		metaBody(`"user_data": "AAA="`),
		metaBody(`"user_data": "AAB="`),
		metaBody(`"user_data": "===="`),
		metaBody(`"hostname": "1.2.3.4", "meta": {"": ""}`),
		metaBody(`"meta": {"k": {"x": 1}}, "public_keys": {"\u0000": "x"}`),
		metaBody(`"id": "x", "updated_at": null, "revision_number": 1`),
		metaBody(`"name": null, "meta": null, "public_keys": null, "user_data": null`),
		`{"instance_metadata": {}, "other": 1}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := DecodeJSON(bytes.NewReader(data))
		if err != nil {
			checkAPIErr(t, data, err)
			return
		}
		fields, err := DecodeInstanceMetadata(devID, body)
		if err != nil {
			checkAPIErr(t, data, err)
			if fields != nil {
				t.Fatalf("input %q: fields returned with an error", data)
			}
			return
		}
		types := map[string]reflect.Type{
			"project_id": tString, "name": tString, "hostname": tString, "availability_zone": tString,
			"user_data": reflect.TypeFor[[]byte](), "meta": reflect.TypeFor[map[string]string](),
			"public_keys": reflect.TypeFor[map[string]string](),
		}
		for k, v := range fields {
			if want, ok := types[k]; !ok {
				t.Fatalf("input %q: unexpected field %q", data, k)
			} else if got := reflect.TypeOf(v); got != want {
				t.Fatalf("input %q: %s decoded as %v, want %v", data, k, got, want)
			}
		}
		m := NewInstanceMetadata(devID, "p")
		m.Replace(fields)
		switch {
		case len(m.UserData) > MaxUserData || m.UserData != nil && len(m.UserData) == 0:
			t.Fatalf("input %q: %d bytes of user data", data, len(m.UserData))
		case len(m.Meta) > MaxMetaItems || len(m.PublicKeys) > MaxPublicKeys:
			t.Fatalf("input %q: %d meta, %d keys", data, len(m.Meta), len(m.PublicKeys))
		case utf8.RuneCountInString(m.Name) > 255 || len(m.Hostname) > 255 || strings.HasPrefix(m.Hostname, "-"):
			t.Fatalf("input %q: name %q hostname %q", data, m.Name, m.Hostname)
		}
		for k, v := range m.PublicKeys {
			if k == "" || v == "" || len(v) > MaxPublicKeyLen || strings.ContainsAny(k, "\n\r") {
				t.Fatalf("input %q: public key %q: %q", data, k, v)
			}
		}
		// What is stored comes back the same, and the view shows the
		// user data as the base64 of exactly the decoded bytes.
		stored, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("input %q: %v", data, err)
		}
		v, err := DecodeAs[InstanceMetadata]()(stored)
		if err != nil {
			t.Fatalf("input %q: stored form does not decode: %v", data, err)
		}
		back := v.(*Cached).Obj.(*InstanceMetadata)
		if !bytes.Equal(back.UserData, m.UserData) || !reflect.DeepEqual(back.Meta, m.Meta) || !reflect.DeepEqual(back.PublicKeys, m.PublicKeys) || back.Hostname != m.Hostname {
			t.Fatalf("input %q: stored %+v, read back %+v", data, m, back)
		}
		if ud, _ := m.View()["user_data"].(string); m.UserData != nil {
			dec, err := base64.StdEncoding.DecodeString(ud)
			if err != nil || !bytes.Equal(dec, m.UserData) {
				t.Fatalf("input %q: view user_data %q does not decode to the bytes", data, ud)
			}
		}
		if _, err := json.Marshal(m.View()); err != nil {
			t.Fatalf("input %q: view does not marshal: %v", data, err)
		}
	})
}
