# The long mini recipe with two levers of issue 15 (docs/recipes.md):
# - recovery samples in the training set (ego displaced 0.5-2 m / 5-15 deg off the expert's path, labelled
#   with the expert's way back; ChauffeurNet-style), in a data root of its own made by
#       python tools/create_mini_dataset.py --out-dir data/drivepi-mini-rec --num-scenes 10 --seed 0 \
#           --recovery-per-keyframe 1
#   then tools/create_data.py and data_engine/generate_qa.py on it as for data/drivepi-mini (the same 8 train
#   and 2 held-out scenes; only the 247 recovery samples are new, all in train);
# - every answer weighs the same in the text loss (loss_average='answer'), instead of every answer token
#   (a 60-token trajectory outweighed thirty yes/no answers).
_base_ = ['./drivepi_mini_long.py']

data_root = 'data/drivepi-mini-rec/'
qa_train_file = data_root + 'qa_train.jsonl'
model = dict(llm=dict(loss_average='answer'), max_answer_tokens=80)
train_dataloader = dict(dataset=dict(data_root=data_root, qa_file=qa_train_file))
test_dataloader = dict(dataset=dict(data_root=data_root, qa_file=data_root + 'qa_val.jsonl'))
val_dataloader = dict(dataset=dict(data_root=data_root, qa_file=data_root + 'qa_val.jsonl'))
test_evaluator = [
    dict(type='OccupancyMetric', data_root=data_root, ann_file='drivepi_infos_val.pkl',
         class_names={{_base_.occ_classes}}),
    dict(type='PlanningMetric'),
    dict(type='QAMetric', majority_qa_file=qa_train_file),
]
val_evaluator = test_evaluator
