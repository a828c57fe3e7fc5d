// File helpers shared by the .npy and .safetensors readers and writers (POSIX).
#include "io/atomic_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>

namespace normkit::io {

namespace {

std::string errno_text(int err) { return err != 0 ? std::strerror(err) : "unknown error"; }

}  // namespace

Status file_error(StatusCode code, const std::string& operation, const std::string& path,
                  const std::string& problem) {
  return Status(code, "normkit: " + operation + " '" + path + "': " + problem);
}

Status open_for_reading(const std::string& path, const std::string& operation, UniqueFile* file,
                        std::int64_t* size) {
  errno = 0;
  UniqueFile f(std::fopen(path.c_str(), "rb"));
  if (!f) return file_error(StatusCode::io_error, operation, path, "cannot open file: " + errno_text(errno));
  // fopen succeeds on directories on Linux; refuse anything whose size is not meaningful.
  struct stat st;
  if (fstat(fileno(f.get()), &st) != 0) {
    return file_error(StatusCode::io_error, operation, path, "cannot stat file: " + errno_text(errno));
  }
  if (!S_ISREG(st.st_mode)) return file_error(StatusCode::io_error, operation, path, "not a regular file");
  *size = static_cast<std::int64_t>(st.st_size);
  *file = std::move(f);
  return Status();
}

Status read_exact(std::FILE* file, void* dst, std::size_t n, const std::string& operation,
                  const std::string& path) {
  if (n == 0) return Status();
  errno = 0;
  std::size_t got = std::fread(dst, 1, n, file);
  if (got == n) return Status();
  if (std::feof(file)) {
    // The size was checked up front, so this only happens when the file shrinks while being read.
    return file_error(StatusCode::bad_file, operation, path,
                      "file is truncated: expected " + std::to_string(n) + " more bytes, got " +
                          std::to_string(got));
  }
  return file_error(StatusCode::io_error, operation, path, "read failed: " + errno_text(errno));
}

bool checked_byte_size(const std::vector<std::int64_t>& shape, std::size_t element_size,
                       std::int64_t* bytes) noexcept {
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  std::int64_t n = 1;
  for (std::int64_t extent : shape) {
    if (extent < 0) return false;
    if (extent != 0 && n > kMax / extent) return false;
    n *= extent;
  }
  const auto size = static_cast<std::int64_t>(element_size);
  if (size != 0 && n > kMax / size) return false;
  *bytes = n * size;
  return true;
}

Status write_file_atomic(const std::string& path, const std::string& operation,
                         const std::function<bool(std::FILE*)>& write_body) {
  static std::atomic<unsigned long> counter{0};
  std::string tmp;
  std::FILE* f = nullptr;
  int err = 0;
  // "x" (exclusive create) never clobbers a stale temporary left by a crashed process whose pid was
  // reused; in that case just try the next name.
  for (int attempt = 0; attempt < 100 && f == nullptr; ++attempt) {
    tmp = path + ".tmp." + std::to_string(static_cast<long>(getpid())) + "." + std::to_string(counter++);
    errno = 0;
    f = std::fopen(tmp.c_str(), "wbx");
    err = errno;
    if (f == nullptr && err != EEXIST) break;
  }
  if (f == nullptr) {
    return file_error(StatusCode::io_error, operation, path,
                      "cannot create temporary file '" + tmp + "': " + errno_text(err));
  }

  errno = 0;
  bool ok = false;
  try {
    ok = write_body(f);
  } catch (...) {  // an exception must not leave the temporary behind or escape the library
    ok = false;
  }
  err = errno;
  if (ok && std::fflush(f) != 0) {
    ok = false;
    err = errno;
  }
  // fclose runs exactly once, whatever happened; a failing close can mean lost buffered data.
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    std::remove(tmp.c_str());
    return file_error(StatusCode::io_error, operation, path,
                      "cannot write temporary file '" + tmp + "': " + errno_text(err));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    return file_error(StatusCode::io_error, operation, path,
                      "cannot rename temporary file '" + tmp + "' over the target: " + errno_text(err));
  }
  return Status();
}

}  // namespace normkit::io
