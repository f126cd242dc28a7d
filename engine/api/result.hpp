// Result<T>: a value or a user-facing error. Used for everything a user, a file or a model can get
// wrong (bad path, corrupt shard, malformed tool call, HTTP 429). Broken invariants use DSA_CHECK.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace dsa {

struct Error {
  std::string message;  // one line, names the file / tensor / field involved
  // A backend had not the memory for the call's rows: the same work may succeed in smaller calls.
  bool out_of_memory = false;
};

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error e) : v_(std::move(e)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : err_(std::move(e)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool ok_ = true;
};

inline Error make_error(std::string msg) { return Error{std::move(msg)}; }

[[noreturn]] inline void check_failed(const char* expr, const char* file, int line, const char* hint) {
  std::fprintf(stderr, "dsagent: internal check failed: %s at %s:%d%s%s\n", expr, file, line,
               hint[0] ? ": " : "", hint);
  std::abort();
}

}  // namespace dsa

// DSA_CHECK(cond, "hint"): a broken invariant (not a user error). Stops with the expression named.
#define DSA_CHECK(cond, ...) \
  ((cond) ? (void)0 : ::dsa::check_failed(#cond, __FILE__, __LINE__, "" __VA_ARGS__))

// DSA_TRY(var, expr): unwraps a Result or returns its error from the enclosing function.
#define DSA_TRY(var, expr)                              \
  auto var##_result_ = (expr);                          \
  if (!var##_result_.ok()) return var##_result_.error(); \
  auto var = std::move(var##_result_).value()
