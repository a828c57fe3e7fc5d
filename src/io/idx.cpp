// IDX reader: one parser over a byte source (a file, a gzip file, memory, gzip in memory) that reads the
// header, then the data in chunks as they arrive (a hostile header cannot make it allocate more than the
// source holds, plus one chunk), then checks that nothing follows.
#include "io/idx.hpp"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <new>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include <sys/types.h>

#include "io/atomic_file.hpp"
#include "normkit/tensor.hpp"

#ifdef NORMKIT_HAVE_ZLIB
#include <zlib.h>
#endif

namespace normkit::io {
namespace {

const char* const kRead = "read_idx";
constexpr int kMaxIdxDims = 8;
constexpr std::size_t kChunk = std::size_t{16} << 20;

Status bad(const std::string& name, const std::string& what) {
  return Status(StatusCode::bad_file, std::string("normkit::") + kRead + ": " + name + ": " + what);
}

// Bytes in order from somewhere; read() returns fewer than asked only at the end or on an error.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual std::size_t read(unsigned char* out, std::size_t n) = 0;
  // Empty while no error happened, else what went wrong (a corrupt gzip stream, a read error).
  virtual std::string error() const { return {}; }
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const unsigned char* data, std::size_t size) : data_(data), size_(size) {}
  std::size_t read(unsigned char* out, std::size_t n) override {
    const std::size_t k = std::min(n, size_ - pos_);
    if (k) std::memcpy(out, data_ + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  const unsigned char* data_;
  std::size_t size_, pos_ = 0;
};

class FileSource : public ByteSource {
 public:
  explicit FileSource(std::FILE* f) : f_(f) {}
  ~FileSource() override { std::fclose(f_); }
  std::size_t read(unsigned char* out, std::size_t n) override { return std::fread(out, 1, n, f_); }
  std::string error() const override { return std::ferror(f_) ? "read error" : ""; }

 private:
  std::FILE* f_;
};

#ifdef NORMKIT_HAVE_ZLIB
// Gzip data from another source (a file or memory), inflated as it is read, one code path for both: a stream
// cut anywhere (its trailer included) is an error, members that follow one another are read in turn (as
// gunzip does), and bytes after the last member that are not a gzip member are an error.
class InflateSource : public ByteSource {
 public:
  explicit InflateSource(ByteSource& compressed) : in_(compressed), buffer_(kInputChunk) {
    std::memset(&z_, 0, sizeof(z_));
    ok_ = inflateInit2(&z_, 16 + MAX_WBITS) == Z_OK;  // (16: a gzip header and trailer)
    if (!ok_) error_ = "zlib could not start";
  }
  ~InflateSource() override { inflateEnd(&z_); }
  std::size_t read(unsigned char* out, std::size_t n) override {
    std::size_t total = 0;
    while (ok_ && !done_ && total < n) {
      if (z_.avail_in == 0 && !refill()) {
        // (the input ended inside a member: after a complete member the loop has already stopped)
        error_ = in_.error().empty() ? "truncated gzip stream (the file ends inside it)" : in_.error();
        ok_ = false;
        break;
      }
      z_.next_out = out + total;
      z_.avail_out = static_cast<uInt>(std::min<std::size_t>(n - total, 1u << 30));
      const uInt before = z_.avail_out;
      const int rc = inflate(&z_, Z_NO_FLUSH);
      total += before - z_.avail_out;
      if (rc == Z_STREAM_END) {
        next_member();
      } else if (rc == Z_BUF_ERROR && before == z_.avail_out && z_.avail_in > 0) {
        error_ = "corrupt gzip stream (no progress)";
        ok_ = false;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        error_ = std::string("corrupt gzip stream (") + (z_.msg ? z_.msg : "zlib error " + std::to_string(rc)) + ")";
        ok_ = false;
      }
    }
    return total;
  }
  std::string error() const override { return error_; }

 private:
  static constexpr std::size_t kInputChunk = std::size_t{1} << 20;
  bool refill() {
    const std::size_t got = in_.read(buffer_.data(), buffer_.size());
    z_.next_in = buffer_.data();
    z_.avail_in = static_cast<uInt>(got);
    return got > 0;
  }
  // After a member: the next one when gzip's magic follows, the end when nothing does, else an error.
  void next_member() {
    if (z_.avail_in == 0 && !refill()) {
      done_ = true;
      return;
    }
    if (z_.avail_in < 2 && buffer_.size() >= 2) {  // (the magic may straddle a chunk)
      const unsigned char first = *z_.next_in;
      const std::size_t more = in_.read(buffer_.data() + 1, buffer_.size() - 1);
      buffer_[0] = first;
      z_.next_in = buffer_.data();
      z_.avail_in = static_cast<uInt>(1 + more);
    }
    if (z_.avail_in >= 2 && z_.next_in[0] == 0x1f && z_.next_in[1] == 0x8b) {
      inflateReset(&z_);
      return;
    }
    error_ = "bytes after the gzip stream that are not a gzip member";
    ok_ = false;
  }

  ByteSource& in_;
  std::vector<unsigned char> buffer_;
  z_stream z_;
  bool ok_ = false, done_ = false;
  std::string error_;
};
#endif

bool is_gzip(const unsigned char* head, std::size_t n) { return n >= 2 && head[0] == 0x1f && head[1] == 0x8b; }

std::uint32_t big_endian_u32(const unsigned char* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

struct IdxHeader {
  DType dtype = DType::uint8;
  std::vector<std::int64_t> shape;
  std::size_t data_bytes = 0;
};

std::string source_error_or(const ByteSource& src, const std::string& name, const std::string& fallback) {
  const std::string e = src.error();
  return "normkit::" + std::string(kRead) + ": " + name + ": " + (e.empty() ? fallback : e);
}

Status parse_header(ByteSource& src, const std::string& name, IdxHeader* h) {
  unsigned char head[4];
  if (src.read(head, 4) != 4) return Status(StatusCode::bad_file, source_error_or(src, name, "truncated: shorter than the 4-byte IDX magic"));
  if (head[0] != 0 || head[1] != 0) return bad(name, "not an IDX file (its first two bytes are not zero)");
  switch (head[2]) {
    case 0x08: h->dtype = DType::uint8; break;
    case 0x0D: h->dtype = DType::float32; break;
    case 0x0E: h->dtype = DType::float64; break;
    case 0x09:
    case 0x0B:
    case 0x0C: {
      const char* names[] = {"int8", "", "int16", "int32"};
      return Status(StatusCode::unsupported_dtype, std::string("normkit::") + kRead + ": " + name + ": IDX type " +
                                                       names[head[2] - 0x09] + " is not supported (uint8, float32, float64)");
    }
    default: {
      char text[8];
      std::snprintf(text, sizeof(text), "0x%02X", head[2]);
      return bad(name, std::string("unknown IDX type byte ") + text + " (expected 0x08, 0x09, 0x0B, 0x0C, 0x0D or 0x0E)");
    }
  }
  const int ndim = head[3];
  if (ndim < 1 || ndim > kMaxIdxDims) {
    return bad(name, "dimension count " + std::to_string(ndim) + " outside 1.." + std::to_string(kMaxIdxDims));
  }
  unsigned char dims[4 * kMaxIdxDims];
  if (src.read(dims, 4 * static_cast<std::size_t>(ndim)) != 4 * static_cast<std::size_t>(ndim)) {
    return Status(StatusCode::bad_file,
                  source_error_or(src, name, "truncated: the header declares " + std::to_string(ndim) + " dimensions but ends before them"));
  }
  h->shape.assign(static_cast<std::size_t>(ndim), 0);
  for (int d = 0; d < ndim; ++d) h->shape[d] = big_endian_u32(dims + 4 * d);
  std::int64_t numel = 0;
  const std::size_t element = dtype_size(h->dtype);
  if (!checked_numel(h->shape.data(), ndim, element, &numel) ||
      static_cast<std::uint64_t>(numel) * element > std::numeric_limits<std::size_t>::max() / 2) {
    return bad(name, "dimensions " + TensorView(nullptr, h->dtype, h->shape.data(), ndim).shape_string() + " overflow a byte size");
  }
  h->data_bytes = static_cast<std::size_t>(numel) * element;
  return Status::success();
}

// `bytes` more data bytes (`done` of them read before), converted to little-endian elements.
Status read_data(ByteSource& src, const std::string& name, const IdxHeader& h, std::size_t done, unsigned char* out, std::size_t bytes) {
  const std::size_t got = src.read(out, bytes);
  if (got < bytes) {
    return Status(StatusCode::bad_file,
                  source_error_or(src, name, "truncated: holds " + std::to_string(done + got) + " of the " + std::to_string(h.data_bytes) +
                                                 " data bytes its header declares (" +
                                                 TensorView(nullptr, h.dtype, h.shape.data(), static_cast<int>(h.shape.size())).shape_string() +
                                                 " " + dtype_name(h.dtype) + ")"));
  }
  const std::size_t element = dtype_size(h.dtype);
  if (element > 1) {
    for (std::size_t i = 0; i < bytes; i += element) std::reverse(out + i, out + i + element);
  }
  return Status::success();
}

// After the declared data: nothing may follow, and the source must have ended cleanly.
Status check_end(ByteSource& src, const std::string& name, const IdxHeader& h) {
  unsigned char extra;
  if (src.read(&extra, 1) != 0) return bad(name, "data continues past the " + std::to_string(h.data_bytes) + " bytes its header declares");
  if (!src.error().empty()) return bad(name, src.error());
  return Status::success();
}

Status parse(ByteSource& src, const std::string& name, NpyArray* out) {
  IdxHeader h;
  NORMKIT_RETURN_IF_ERROR(parse_header(src, name, &h));
  std::vector<unsigned char> data;
  while (data.size() < h.data_bytes) {  // (grown as the data arrives: a hostile header allocates nothing)
    const std::size_t have = data.size(), ask = std::min(kChunk, h.data_bytes - have);
    try {
      data.resize(have + ask);
    } catch (const std::bad_alloc&) {
      return Status(StatusCode::io_error, "normkit::read_idx: '" + name + "' holds " + std::to_string(h.data_bytes) +
                                              " bytes of data, more than this process can hold in memory");
    }
    NORMKIT_RETURN_IF_ERROR(read_data(src, name, h, have, data.data() + have, ask));
  }
  NORMKIT_RETURN_IF_ERROR(check_end(src, name, h));
  out->dtype = h.dtype;
  out->shape = std::move(h.shape);
  out->data = std::move(data);
  return Status::success();
}

Status open_error(const std::string& path) {
  return Status(StatusCode::io_error, std::string("normkit::") + kRead + ": cannot open '" + path + "': " + std::strerror(errno));
}

#ifndef NORMKIT_HAVE_ZLIB
Status gzip_unsupported(const std::string& name) {
  return Status(StatusCode::unsupported_dtype, std::string("normkit::") + kRead + ": " + name +
                                                   " is gzip-compressed and normkit was built without zlib (install zlib1g-dev and rebuild)");
}
#endif

}  // namespace

bool idx_gzip_supported() {
#ifdef NORMKIT_HAVE_ZLIB
  return true;
#else
  return false;
#endif
}

Status read_idx(const unsigned char* data, std::size_t size, const std::string& name, NpyArray* out) {
  if (is_gzip(data, size)) {
#ifdef NORMKIT_HAVE_ZLIB
    MemorySource compressed(data, size);
    InflateSource src(compressed);
    return parse(src, name, out);
#else
    return gzip_unsupported(name);
#endif
  }
  MemorySource src(data, size);
  return parse(src, name, out);
}

Status read_idx(const std::string& path, NpyArray* out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return open_error(path);
  unsigned char head[2] = {0, 0};
  const std::size_t n = std::fread(head, 1, 2, f);
  if (!is_gzip(head, n)) {
    std::rewind(f);
    FileSource src(f);
    return parse(src, path, out);
  }
#ifdef NORMKIT_HAVE_ZLIB
  std::rewind(f);
  FileSource compressed(f);
  InflateSource src(compressed);
  return parse(src, path, out);
#else
  std::fclose(f);
  return gzip_unsupported(path);
#endif
}

Status read_array_file(const std::string& path, NpyArray* out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    return Status(StatusCode::io_error, "normkit::read_array_file: cannot open '" + path + "': " + std::strerror(errno));
  }
  unsigned char head[6] = {};
  const std::size_t n = std::fread(head, 1, sizeof(head), f);
  std::fclose(f);
  const unsigned char npy[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (n == sizeof(head) && std::memcmp(head, npy, sizeof(npy)) == 0) return read_npy(path, out);
  if (is_gzip(head, n) || (n >= 2 && head[0] == 0 && head[1] == 0)) return read_idx(path, out);
  return Status(StatusCode::bad_file, "normkit::read_array_file: " + path + ": neither a .npy file nor an IDX file (plain or gzip)");
}

Status ArrayStream::skip(std::size_t bytes) {
  std::vector<unsigned char> scratch(std::min<std::size_t>(bytes, std::size_t{1} << 20));
  for (std::size_t done = 0; done < bytes;) {
    const std::size_t n = std::min(scratch.size(), bytes - done);
    NORMKIT_RETURN_IF_ERROR(read(scratch.data(), n));
    done += n;
  }
  return Status::success();
}

Status ArrayStream::map(std::size_t, Mapping* out) {
  *out = Mapping{};
  return Status::success();
}

void ArrayStream::unmap(Mapping* mapping) noexcept {
  if (mapping->base != nullptr) munmap(mapping->base, mapping->length);
  *mapping = Mapping{};
}

namespace {

class IdxStream : public ArrayStream {
 public:
  IdxStream(std::FILE* f, bool gzip, std::string name) : name_(std::move(name)), file_(f) {
#ifdef NORMKIT_HAVE_ZLIB
    if (gzip) inflate_ = std::make_unique<InflateSource>(file_);
#else
    (void)gzip;
#endif
  }
  Status open() {
    IdxHeader h;
    NORMKIT_RETURN_IF_ERROR(parse_header(source(), name_, &h));
    dtype_ = h.dtype;
    shape_ = h.shape;
    data_bytes_ = h.data_bytes;
    header_ = std::move(h);
    return Status::success();
  }
  Status read(void* out, std::size_t bytes) override {
    NORMKIT_RETURN_IF_ERROR(read_data(source(), name_, header_, done_, static_cast<unsigned char*>(out), bytes));
    done_ += bytes;
    return Status::success();
  }
  Status finish() override { return check_end(source(), name_, header_); }

 private:
  ByteSource& source() {
#ifdef NORMKIT_HAVE_ZLIB
    if (inflate_) return *inflate_;
#endif
    return file_;
  }
  std::string name_;
  FileSource file_;
#ifdef NORMKIT_HAVE_ZLIB
  std::unique_ptr<InflateSource> inflate_;
#endif
  IdxHeader header_;
  std::size_t done_ = 0;
};

class NpyStream : public ArrayStream {
 public:
  NpyStream(UniqueFile file, std::string name) : file_(std::move(file)), name_(std::move(name)) {}
  Status open(std::int64_t size) {
    NpyArray header;
    std::int64_t data_bytes = 0;
    NORMKIT_RETURN_IF_ERROR(read_npy_header(file_.get(), size, name_, &header, &data_bytes));
    dtype_ = header.dtype;
    shape_ = header.shape;
    data_bytes_ = static_cast<std::size_t>(data_bytes);
    return Status::success();
  }
  Status read(void* out, std::size_t bytes) override { return read_exact(file_.get(), out, bytes, "read_npy", name_); }
  Status skip(std::size_t bytes) override {  // (the size was checked against the header: a seek inside the data)
    if (fseeko(file_.get(), static_cast<off_t>(bytes), SEEK_CUR) != 0) {
      return Status(StatusCode::io_error, "normkit::read_npy: " + name_ + ": seek failed: " + std::strerror(errno));
    }
    return Status::success();
  }
  // (MAP_POPULATE: the page tables filled in the call, on the reading thread, not by faults in the engine's)
  Status map(std::size_t bytes, Mapping* out) override {
    *out = Mapping{};
    const off_t position = ftello(file_.get());
    struct stat st;
    // (read() instead: a data offset that is not a multiple of the element size, which numpy never writes but
    // other writers may, would give a misaligned pointer; a file cut since it was opened, which read() reports.
    // A file cut after this check while mapped faults on access, as any mapped reader does.)
    if (bytes == 0 || position < 0 || position % static_cast<off_t>(dtype_size(dtype_)) != 0 ||
        fstat(fileno(file_.get()), &st) != 0 || st.st_size < position + static_cast<off_t>(bytes)) {
      return Status::success();
    }
    const off_t page = static_cast<off_t>(sysconf(_SC_PAGESIZE));
    const off_t start = position / page * page;
    const std::size_t length = bytes + static_cast<std::size_t>(position - start);
    void* base = mmap(nullptr, length, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fileno(file_.get()), start);
    if (base == MAP_FAILED) return Status::success();
    out->base = base;
    out->length = length;
    out->data = static_cast<const unsigned char*>(base) + (position - start);
    const Status moved = skip(bytes);
    if (!moved.ok()) unmap(out);
    return moved;
  }
  Status finish() override { return Status::success(); }  // (the size was checked against the header)

 private:
  UniqueFile file_;
  std::string name_;
};

}  // namespace

Status open_array_stream(const std::string& path, std::unique_ptr<ArrayStream>* out) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Status(StatusCode::io_error, "normkit::open_array_stream: cannot open '" + path + "': " + std::strerror(errno));
  unsigned char head[6] = {};
  const std::size_t n = std::fread(head, 1, sizeof(head), f);
  std::fclose(f);
  const unsigned char npy[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (n == sizeof(head) && std::memcmp(head, npy, sizeof(npy)) == 0) {
    UniqueFile file;
    std::int64_t size = 0;
    NORMKIT_RETURN_IF_ERROR(open_for_reading(path, "read_npy", &file, &size));
    auto stream = std::make_unique<NpyStream>(std::move(file), path);
    NORMKIT_RETURN_IF_ERROR(stream->open(size));
    *out = std::move(stream);
    return Status::success();
  }
  if (is_gzip(head, n) || (n >= 2 && head[0] == 0 && head[1] == 0)) {
#ifndef NORMKIT_HAVE_ZLIB
    if (is_gzip(head, n)) return gzip_unsupported(path);
#endif
    std::FILE* g = std::fopen(path.c_str(), "rb");
    if (!g) return open_error(path);
    auto stream = std::make_unique<IdxStream>(g, is_gzip(head, n), path);
    NORMKIT_RETURN_IF_ERROR(stream->open());
    *out = std::move(stream);
    return Status::success();
  }
  return Status(StatusCode::bad_file, "normkit::open_array_stream: " + path + ": neither a .npy file nor an IDX file (plain or gzip)");
}

}  // namespace normkit::io
