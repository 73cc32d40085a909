// Package errdefs is berth's fixed vocabulary of error kinds. Library
// packages wrap one of these sentinels (with %w and context) where a caller
// may need to branch on what went wrong; callers test with errors.Is, and
// the CLI maps each kind to a message and an exit code.
//
// It owns only the kinds, not any error text: the context is added at each
// call site.
package errdefs

import "errors"

var (
	// ErrNotFound: the named object (image, blob, snapshot) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: an object with that name or digest is already there.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument: the caller's input is malformed (a bad reference,
	// an unknown media type, a hostile archive entry).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrFailedPrecondition: the request is well formed but the state does
	// not allow it (an image in use, a parent that is not committed).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrConflict: another writer holds or changed the object.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: a resource is busy or unreachable right now; trying
	// again later may work.
	ErrUnavailable = errors.New("unavailable")
	// ErrDataLoss: stored or received data does not match its digest or size.
	ErrDataLoss = errors.New("data loss")
	// ErrNotImplemented: a valid request berth does not support (schema 1
	// manifests, foreign platforms).
	ErrNotImplemented = errors.New("not implemented")
	// ErrPermissionDenied: the caller is not allowed (credentials a
	// registry refused, a repository the account may not read).
	ErrPermissionDenied = errors.New("access denied")
)

// IsNotFound and its siblings read better at call sites than errors.Is with
// the sentinel, and keep the sentinels' names in one place.
func IsNotFound(err error) bool           { return errors.Is(err, ErrNotFound) }
func IsAlreadyExists(err error) bool      { return errors.Is(err, ErrAlreadyExists) }
func IsInvalidArgument(err error) bool    { return errors.Is(err, ErrInvalidArgument) }
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }
func IsConflict(err error) bool           { return errors.Is(err, ErrConflict) }
func IsUnavailable(err error) bool        { return errors.Is(err, ErrUnavailable) }
func IsDataLoss(err error) bool           { return errors.Is(err, ErrDataLoss) }
func IsNotImplemented(err error) bool     { return errors.Is(err, ErrNotImplemented) }
func IsPermissionDenied(err error) bool   { return errors.Is(err, ErrPermissionDenied) }
