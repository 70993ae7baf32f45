package model

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// show renders a decoded JSON value as Neutron quotes it in messages.
func show(v any) string {
	switch t := v.(type) {
	case nil:
		return "None"
	case string:
		return t
	case json.Number:
		return t.String()
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return fmt.Sprint(t)
		}
		return string(b)
	}
}

// ParseString accepts a string of at most max characters (0: no limit).
func ParseString(max int) func(any) (any, error) {
	return func(v any) (any, error) {
		s, ok := v.(string)
		if !ok {
			return nil, reason("'%s' is not a valid string", show(v))
		}
		if max > 0 && len([]rune(s)) > max {
			return nil, reason("'%s' exceeds maximum length of %d", s, max)
		}
		return s, nil
	}
}

// ParseBool accepts what neutron-lib's convert_to_boolean does: booleans,
// the integers 1 and 0, and oslo's strict bool_from_string words, in any
// case and with surrounding blanks.
func ParseBool(v any) (any, error) {
	switch t := v.(type) {
	case bool:
		return t, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "1", "t", "true", "on", "y", "yes":
			return true, nil
		case "0", "f", "false", "off", "n", "no":
			return false, nil
		}
	case json.Number:
		switch t.String() {
		case "1":
			return true, nil
		case "0", "-0":
			return false, nil
		}
	}
	return nil, reason("'%s' cannot be converted to boolean", show(v))
}

// ParseInt accepts an integer (or a string holding one) within [min, max].
func ParseInt(min, max int64) func(any) (any, error) {
	return func(v any) (any, error) {
		var s string
		switch t := v.(type) {
		case json.Number:
			s = t.String()
		case string:
			s = t
		default:
			return nil, reason("'%s' is not an integer", show(v))
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, reason("'%s' is not an integer", show(v))
		}
		if n < min {
			return nil, reason("'%d' is too small - must be at least '%d'", n, min)
		}
		if n > max {
			return nil, reason("'%d' is too large - must be no larger than '%d'", n, max)
		}
		return n, nil
	}
}

// ParseUUID accepts a UUID string and returns it in canonical form.
func ParseUUID(v any) (any, error) {
	s, ok := v.(string)
	if ok {
		if u, err := uuid.Parse(s); err == nil && len(s) == 36 {
			return u.String(), nil
		}
	}
	return nil, reason("'%s' is not a valid UUID", show(v))
}

// ParseUUIDOrNull is ParseUUID that also accepts null, returned as "".
func ParseUUIDOrNull(v any) (any, error) {
	if v == nil {
		return "", nil
	}
	return ParseUUID(v)
}

// ParseUUIDList accepts a list of UUIDs without duplicates.
func ParseUUIDList(v any) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, reason("'%s' is not a list", show(v))
	}
	out := make([]string, 0, len(list))
	seen := map[string]bool{}
	for _, it := range list {
		u, err := ParseUUID(it)
		if err != nil {
			return nil, err
		}
		if seen[u.(string)] {
			return nil, reason("Duplicate items in the list: '%s'", u)
		}
		seen[u.(string)] = true
		out = append(out, u.(string))
	}
	return out, nil
}

// ParseIP accepts an IPv4 or IPv6 address.
func ParseIP(v any) (any, error) {
	s, ok := v.(string)
	if ok {
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			return a.Unmap(), nil
		}
	}
	return nil, reason("'%s' is not a valid IP address", show(v))
}

// ParseIPOrNull is ParseIP that also accepts null (an invalid netip.Addr).
func ParseIPOrNull(v any) (any, error) {
	if v == nil {
		return netip.Addr{}, nil
	}
	return ParseIP(v)
}

// ParseCIDR accepts a subnet in CIDR notation; host bits must be zero.
func ParseCIDR(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, reason("'%s' is not a valid IP subnet", show(v))
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return nil, reason("'%s' is not a valid IP subnet", s)
	}
	if p.Masked() != p {
		return nil, reason("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, p.Masked())
	}
	return p, nil
}

// ParseIPOrCIDR accepts an address or a prefix (allowed address pairs); an
// address becomes a host prefix.
func ParseIPOrCIDR(v any) (any, error) {
	s, ok := v.(string)
	if ok {
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			return p.Masked(), nil
		}
	}
	return nil, reason("'%s' is not a valid IP subnet", show(v))
}

// ParseMAC accepts a unicast 48-bit MAC address and returns it lower-case
// with colons.
func ParseMAC(v any) (any, error) {
	s, ok := v.(string)
	if ok {
		if hw, err := net.ParseMAC(s); err == nil && len(hw) == 6 && hw[0]&1 == 0 && hw.String() != "00:00:00:00:00:00" {
			return hw.String(), nil
		}
	}
	return nil, reason("'%s' is not a valid MAC address", show(v))
}

// ParseDict accepts a JSON object.
func ParseDict(v any) (any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, reason("'%s' is not a dictionary", show(v))
	}
	return m, nil
}

// ParseOneOf accepts one of the given strings.
func ParseOneOf(values ...string) func(any) (any, error) {
	return func(v any) (any, error) {
		s, ok := v.(string)
		if ok {
			for _, w := range values {
				if s == w {
					return s, nil
				}
			}
		}
		return nil, reason("'%s' is not in %s", show(v), pyList(values))
	}
}

// ParseOneOfOrNull is ParseOneOf that also accepts null, returned as "".
func ParseOneOfOrNull(values ...string) func(any) (any, error) {
	p := ParseOneOf(values...)
	return func(v any) (any, error) {
		if v == nil {
			return "", nil
		}
		return p(v)
	}
}

func pyList(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = "'" + v + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// dictWith checks an object has only the allowed keys and the required ones.
func dictWith(v any, required []string, optional ...string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, reason("'%s' is not a dictionary", show(v))
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return nil, reason("Validation of dictionary's keys failed. Expected keys: %s Provided keys: %s",
				pyList(append(append([]string{}, required...), optional...)), pyList(keys(m)))
		}
	}
	for k := range m {
		if !contains(required, k) && !contains(optional, k) {
			return nil, reason("Validation of dictionary's keys failed. Expected keys: %s Provided keys: %s",
				pyList(append(append([]string{}, required...), optional...)), pyList(keys(m)))
		}
	}
	return m, nil
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
