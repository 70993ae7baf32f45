package model

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vland/vland/internal/apierr"
)

// UUIDs used throughout the tests.
const (
	netID  = "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f"
	subID  = "9b7d2c1e-3f4a-4b5c-8d6e-7f8091a2b3c4"
	subID2 = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
	sgID   = "5a6b7c8d-9e0f-4a1b-9c2d-3e4f5a6b7c8d"
	sgID2  = "6b7c8d9e-0f1a-4b2c-8d3e-4f5a6b7c8d9e"
)

// decode runs a raw body through DecodeJSON and spec.DecodeBody.
func decode(spec *Spec, body string, op Op) ([]Fields, bool, error) {
	m, err := DecodeJSON(strings.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	return spec.DecodeBody(m, op)
}

// decodeOne decodes a body holding one resource and fails the test on error.
func decodeOne(t *testing.T, spec *Spec, body string, op Op) Fields {
	t.Helper()
	items, bulk, err := decode(spec, body, op)
	if err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if bulk || len(items) != 1 {
		t.Fatalf("decode %s: bulk=%v, %d items", body, bulk, len(items))
	}
	return items[0]
}

// wantAPIErr checks err is an *apierr.Error of the given status whose
// message is msg (exactly, or containing it when msg starts with "~").
func wantAPIErr(t *testing.T, err error, status int, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %d %q", status, msg)
	}
	var e *apierr.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not an *apierr.Error", err, err)
	}
	if e.Status != status {
		t.Errorf("status = %d (%v), want %d", e.Status, e, status)
	}
	if sub, ok := strings.CutPrefix(msg, "~"); ok {
		if !strings.Contains(e.Message, sub) {
			t.Errorf("message = %q, want it to contain %q", e.Message, sub)
		}
	} else if msg != "" && e.Message != msg {
		t.Errorf("message = %q\n want %q", e.Message, msg)
	}
}

// jsonEqual compares a rendered view with expected JSON, as a client sees it.
func jsonEqual(t *testing.T, view map[string]any, want string) {
	t.Helper()
	got, err := json.Marshal(view)
	if err != nil {
		t.Fatalf("marshal view: %v", err)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expected JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		gm, _ := g.(map[string]any)
		wm, _ := w.(map[string]any)
		for k, v := range wm {
			if gv, ok := gm[k]; !ok {
				t.Errorf("view lacks %q", k)
			} else if !reflect.DeepEqual(gv, v) {
				t.Errorf("view[%q] = %#v, want %#v", k, gv, v)
			}
		}
		for k := range gm {
			if _, ok := wm[k]; !ok {
				t.Errorf("view has unexpected %q = %#v", k, gm[k])
			}
		}
		if gm == nil || wm == nil {
			t.Errorf("view = %s\nwant %s", got, want)
		}
	}
}
