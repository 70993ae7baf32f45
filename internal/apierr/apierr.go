// Package apierr defines the errors the API returns: an HTTP status plus
// Neutron's error type and message, rendered as a NeutronError body.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an API error as Neutron reports it.
type Error struct {
	Status  int    // HTTP status code
	Type    string // Neutron exception name, e.g. "NetworkNotFound"
	Message string
	Detail  string
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message) }

// Body is the JSON body Neutron sends with an error.
type Body struct {
	NeutronError struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Detail  string `json:"detail"`
	} `json:"NeutronError"`
}

// Body returns the error's JSON body.
func (e *Error) Body() Body {
	var b Body
	b.NeutronError.Type = e.Type
	b.NeutronError.Message = e.Message
	b.NeutronError.Detail = e.Detail
	return b
}

// As extracts an *Error from err, or reports false.
func As(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e, true
	}
	return nil, false
}

// New builds an error with a formatted message.
func New(status int, typ, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// BadRequest is Neutron's generic 400 for invalid input.
func BadRequest(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "HTTPBadRequest", format, args...)
}

// InvalidInput is Neutron's 400 for an attribute that fails validation.
func InvalidInput(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "InvalidInput", "Invalid input for operation: "+format+".", args...)
}

// InvalidAttr is the 400 Neutron gives when an attribute's value is invalid.
func InvalidAttr(attr, reason string) *Error {
	return New(http.StatusBadRequest, "HTTPBadRequest", "Invalid input for %s. Reason: %s.", attr, reason)
}

// NotFound is Neutron's 404 for a resource, e.g. NotFound("Network", "network", id).
func NotFound(typ, what, id string) *Error {
	return New(http.StatusNotFound, typ+"NotFound", "%s %s could not be found.", what, id)
}

// Conflict is a 409 of the given Neutron type.
func Conflict(typ, format string, args ...any) *Error {
	return New(http.StatusConflict, typ, format, args...)
}

// Forbidden is Neutron's 403 for a policy refusal.
func Forbidden(format string, args ...any) *Error {
	return New(http.StatusForbidden, "HTTPForbidden", format, args...)
}

// PolicyNotAuthorized is the 403 Neutron gives when policy refuses an action.
func PolicyNotAuthorized(action string) *Error {
	return New(http.StatusForbidden, "PolicyNotAuthorized", "(rule:%s) is disallowed by policy", action)
}

// Unavailable is a 503, e.g. when no segment can be allocated.
func Unavailable(typ, format string, args ...any) *Error {
	return New(http.StatusServiceUnavailable, typ, format, args...)
}
