/*
 * dnnsim: predicts how fast deep-learning training runs when it is spread
 * over many devices. The umbrella header: one include for the whole
 * public API. Each module's header is documented on its own page in docs/.
 */
#ifndef DNNSIM_H
#define DNNSIM_H

#include "dnnsim/core.h"
#include "dnnsim/model.h"
#include "dnnsim/hw.h"
#include "dnnsim/comm.h"
#include "dnnsim/scenario.h"
#include "dnnsim/strat.h"
#include "dnnsim/search.h"
#include "dnnsim/sim.h"
#include "dnnsim/mbatch.h"
#include "dnnsim/plot.h"
#include "dnnsim/measure.h"
#include "dnnsim/calibrate.h"

#endif /* DNNSIM_H */
