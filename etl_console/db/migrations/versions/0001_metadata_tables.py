"""metadata tables

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 14:56:58.055912
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('etl_pipelines',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('target_table', sa.String(length=255), nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('source_query', sa.Text(), nullable=False),
    sa.Column('incremental_key', sa.String(length=255), nullable=True),
    sa.Column('schedule', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_index('ix_etl_pipelines_status', 'etl_pipelines', ['status'], unique=False)
    op.create_table('etl_runners',
    sa.Column('worker_id', sa.String(length=255), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('worker_id')
    )
    op.create_table('etl_pipeline_runs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('pipeline_id', sa.UUID(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('clock_timestamp()'), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('rows_read', sa.BigInteger(), nullable=False),
    sa.Column('rows_written', sa.BigInteger(), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('worker_id', sa.String(length=255), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested', sa.String(length=32), nullable=True),
    sa.Column('config_snapshot', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.ForeignKeyConstraint(['pipeline_id'], ['etl_pipelines.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_etl_pipeline_runs_history', 'etl_pipeline_runs', ['pipeline_id', sa.literal_column('started_at DESC'), sa.literal_column('id DESC')], unique=False)
    op.create_index('ix_etl_pipeline_runs_running', 'etl_pipeline_runs', ['started_at'], unique=False, postgresql_where=sa.text("status = 'RUNNING'"))
    op.create_index('uq_etl_pipeline_runs_one_running', 'etl_pipeline_runs', ['pipeline_id'], unique=True, postgresql_where=sa.text("status = 'RUNNING'"))
    op.create_table('etl_pipeline_tasks',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('pipeline_id', sa.UUID(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['etl_pipelines.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_etl_pipeline_tasks_pipeline_id'), 'etl_pipeline_tasks', ['pipeline_id'], unique=False)
    op.create_table('etl_state',
    sa.Column('pipeline_id', sa.UUID(), nullable=False),
    sa.Column('watermark', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['etl_pipelines.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pipeline_id')
    )


def downgrade() -> None:
    op.drop_table('etl_state')
    op.drop_index(op.f('ix_etl_pipeline_tasks_pipeline_id'), table_name='etl_pipeline_tasks')
    op.drop_table('etl_pipeline_tasks')
    op.drop_index('uq_etl_pipeline_runs_one_running', table_name='etl_pipeline_runs', postgresql_where=sa.text("status = 'RUNNING'"))
    op.drop_index('ix_etl_pipeline_runs_running', table_name='etl_pipeline_runs', postgresql_where=sa.text("status = 'RUNNING'"))
    op.drop_index('ix_etl_pipeline_runs_history', table_name='etl_pipeline_runs')
    op.drop_table('etl_pipeline_runs')
    op.drop_table('etl_runners')
    op.drop_index('ix_etl_pipelines_status', table_name='etl_pipelines')
    op.drop_table('etl_pipelines')
