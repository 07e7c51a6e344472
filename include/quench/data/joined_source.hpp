#pragma once
// joined_source: several sources side by side, each feeding its own graph inputs (images from
// one file, masks from another); every part must have the same number of samples.
//
//     std::vector<std::unique_ptr<quench::data::sample_source>> parts;
//     parts.push_back(std::make_unique<quench::data::npy_source>(...));   // "image"
//     parts.push_back(std::make_unique<quench::data::npz_source>(...));   // "mask"
//     quench::data::joined_source src(std::move(parts));

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "quench/data/sample_source.hpp"

namespace quench::data {

class joined_source final : public sample_source {
 public:
  explicit joined_source(std::vector<std::unique_ptr<sample_source>> parts) : parts_(std::move(parts)) {
    if (parts_.empty()) throw_error(errc::invalid_argument, "joined_source", "needs at least one source");
    for (std::size_t i = 1; i < parts_.size(); ++i)
      if (parts_[i]->size() != parts_[0]->size())
        throw_shape_mismatch("data for the graph inputs", std::to_string(parts_[0]->size()) + " samples like " + parts_[0]->sample_name(0),
                             std::to_string(parts_[i]->size()) + " samples in " + parts_[i]->sample_name(0));
  }
  std::int64_t size() const override { return parts_[0]->size(); }
  std::string sample_name(std::int64_t i) const override {
    std::string s;
    for (const auto& p : parts_) s += (s.empty() ? "" : " + ") + p->sample_name(i);
    return s;
  }
  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    batch out;
    std::set<std::string> seen;
    for (const auto& p : parts_)
      for (auto& [name, t] : p->read(first, count)) {
        if (!seen.insert(name).second) throw_error(errc::invalid_argument, "input '" + name + "'", "is given by two data sources");
        out.emplace_back(name, std::move(t));
      }
    return out;
  }

 private:
  std::vector<std::unique_ptr<sample_source>> parts_;
};

}  // namespace quench::data
