package storage

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/aws/smithy-go"
)

// Code is a portable class of storage error: what a caller may do about it, whichever driver
// it came from (a local folder's errno, an S3 status or error code).
type Code int

const (
	// CodeOK is no error (nil's code).
	CodeOK Code = iota
	// CodeUnknown is an error of no known class.
	CodeUnknown
	// CodeNotFound is a key, folder or bucket that is not there.
	CodeNotFound
	// CodePermission is refused access: missing permissions, a read-only filesystem, S3's
	// 403 / AccessDenied, credentials the service does not accept. Retrying does not help.
	CodePermission
	// CodeNoSpace is a full disk or an exhausted quota. Retrying does not help.
	CodeNoSpace
	// CodeInvalid is a request the service refuses as malformed (a bad key, S3's 400).
	CodeInvalid
	// CodeTransient is a failure that may pass: a server error (5xx), throttling, a timeout,
	// a dropped connection.
	CodeTransient
	// CodeCanceled is an operation stopped by its caller's context.
	CodeCanceled
	// CodeConflict is a name a file system cannot give: a file where a folder is needed, or a
	// folder where a file should go, as when an S3 source holds both "a" and "a/b". Retrying
	// does not help.
	CodeConflict
)

// String names the code for logs.
func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeNotFound:
		return "not found"
	case CodePermission:
		return "permission denied"
	case CodeNoSpace:
		return "no space"
	case CodeInvalid:
		return "invalid"
	case CodeTransient:
		return "transient"
	case CodeCanceled:
		return "canceled"
	case CodeConflict:
		return "name conflict"
	}
	return "unknown"
}

// codeError is an error the package classified where it arose (bad keys, for one).
type codeError struct {
	code Code
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// withCode marks err with its class.
func withCode(code Code, err error) error { return &codeError{code: code, err: err} }

// ErrorCode classifies an error returned by a Bucket (wrapped or not), whatever its driver,
// in the manner of gocloud.dev/gcerrors: callers decide on the code, not on driver types.
func ErrorCode(err error) Code {
	if err == nil {
		return CodeOK
	}
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	if c := s3Code(err); c != CodeUnknown {
		return c
	}
	return localCode(err)
}

// localCode classifies the errors of the local filesystem and of the network.
func localCode(err error) Code {
	switch {
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return CodeNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM),
		errors.Is(err, syscall.EROFS):
		return CodePermission
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return CodeNoSpace
	case errors.Is(err, fs.ErrInvalid), errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENAMETOOLONG):
		return CodeInvalid
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.EIO):
		return CodeTransient
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return CodeTransient
	}
	return CodeUnknown
}

// s3Code classifies an S3 answer by its error code, then by its HTTP status.
func s3Code(err error) Code {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch code := ae.ErrorCode(); {
		case code == "NoSuchKey" || code == "NotFound" || code == "NoSuchBucket" || code == "NoSuchUpload":
			return CodeNotFound
		case code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" ||
			code == "AllAccessDisabled" || code == "AccountProblem" || code == "ExpiredToken" ||
			code == "InvalidToken":
			return CodePermission
		case code == "SlowDown" || code == "RequestTimeout" || code == "InternalError" ||
			code == "ServiceUnavailable" || strings.Contains(code, "Throttl"):
			return CodeTransient
		case code == "QuotaExceeded":
			return CodeNoSpace
		}
	}
	switch st := httpStatus(err); {
	case st == 0:
		return CodeUnknown
	case st == http.StatusNotFound:
		return CodeNotFound
	case st == http.StatusForbidden || st == http.StatusUnauthorized:
		return CodePermission
	case st == http.StatusRequestTimeout || st == http.StatusTooManyRequests || st >= 500:
		return CodeTransient
	case st >= 400:
		return CodeInvalid
	}
	return CodeUnknown
}
