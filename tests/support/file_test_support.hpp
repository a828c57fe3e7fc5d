// Helpers of the file-format tests: a status check that names what went wrong, a fixture with its own
// temporary folder, and whole-file reads and writes.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "normkit/status.hpp"

namespace normkit::testing {

// Success when `s` failed with `code` and a message containing `word`.
inline ::testing::AssertionResult fails_with(const Status& s, StatusCode code, const std::string& word) {
  if (s.ok()) return ::testing::AssertionFailure() << "expected an error, got ok";
  if (s.code() != code) {
    return ::testing::AssertionFailure() << "code " << status_code_name(s.code()) << ", expected " << status_code_name(code)
                                         << ": " << s.message();
  }
  if (s.message().find(word) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks '" << word << "': " << s.message();
  }
  return ::testing::AssertionSuccess();
}

inline std::string read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A fixture owning a fresh temporary folder, removed after each test.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "/normkit_test_XXXXXX";
    ASSERT_NE(mkdtemp(&tmpl[0]), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  // Number of entries in the folder (atomic writers must leave no temporary behind).
  std::size_t entries() const {
    return static_cast<std::size_t>(
        std::distance(std::filesystem::directory_iterator(dir_), std::filesystem::directory_iterator()));
  }

  std::string dir_;
};

}  // namespace normkit::testing
