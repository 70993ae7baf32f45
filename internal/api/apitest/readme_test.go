package apitest

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMEListsExactlyTheAdvertisedExtensions keeps the README's table of
// extensions equal to what GET /v2.0/extensions advertises.
func TestREADMEListsExactlyTheAdvertisedExtensions(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../../README.md")
	must(t, err)
	_, section, ok := strings.Cut(string(data), "<!-- extensions:begin -->")
	section, _, ok2 := strings.Cut(section, "<!-- extensions:end -->")
	if !ok || !ok2 {
		t.Fatal("README has no extensions table between the markers")
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")
	var documented []string
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented = append(documented, m[1])
	}
	r := shared.raw(t, shared.a, "GET", "/v2.0/extensions", "")
	var advertised []string
	for _, e := range r.json(t)["extensions"].([]any) {
		advertised = append(advertised, e.(map[string]any)["alias"].(string))
	}
	slices.Sort(documented)
	slices.Sort(advertised)
	if !slices.Equal(documented, advertised) {
		t.Fatalf("README documents %v\nserver advertises %v", documented, advertised)
	}
}
