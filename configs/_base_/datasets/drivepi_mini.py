# The generated mini set (tools/create_mini_dataset.py, then tools/create_data.py ... --version
# v1.0-drivepi-mini) and its QA files (data_engine/generate_qa.py). Small images, few sweeps: CPU-sized.
# The OpenOcc config with what differs: data root, image size, sweeps, workers.
_base_ = ['./nuscenes_openocc.py']

data_root = 'data/drivepi-mini/'
qa_train_file = data_root + 'qa_train.jsonl'  # also the QA metric's most-common-answer baseline
img_size = (128, 352)  # (H, W)
num_sweeps = 3

# `_base_` is the inherited config (MMEngine provides it while parsing this file)
load_sweeps = dict(_base_.load_sweeps, sweeps_num=num_sweeps)
train_resize = dict(_base_.train_resize, final_size=img_size)
test_resize = dict(_base_.test_resize, final_size=img_size)
train_pipeline = [_base_.load_points, load_sweeps, *_base_.points_to_ego, _base_.load_images, train_resize,
                  _base_.load_occ, _base_.load_planning, *_base_.train_tail]
test_pipeline = [_base_.load_points, dict(load_sweeps, test_mode=True), *_base_.points_to_ego, _base_.load_images,
                 test_resize, _base_.load_occ, _base_.load_planning, *_base_.test_tail]

train_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, qa_file=qa_train_file,
                                                    pipeline=train_pipeline))
val_dataloader = dict(num_workers=1, dataset=dict(data_root=data_root, qa_file=data_root + 'qa_val.jsonl',
                                                  pipeline=test_pipeline))
test_dataloader = val_dataloader
