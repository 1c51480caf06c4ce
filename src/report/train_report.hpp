#pragma once
// `memtax estimate --mode train`: one training step's memory per GPU in every format.
#include <string>

#include "model/train_time.hpp"
#include "model/training.hpp"
#include "report/report.hpp"

namespace memtax {

// format: table | json | csv | markdown (JSON schema memtax.train/1: inputs, per_gpu, components).
std::string train_report(const TrainEstimate& e, const ToolInfo& tool, const std::string& format, const TrainTime* time = nullptr);

}  // namespace memtax
